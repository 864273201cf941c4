/**
 * Courier's core: contracts, the bus, the handler pipeline, the wire format and the transport
 * interface. No broker driver lives here; transports are separate packages.
 */
export { createBus } from './bus.js';
export type {
  BatchItem,
  BatchOptions,
  Bus,
  BusEvent,
  BusOptions,
  ConsumeMiddleware,
  DeadLetterApi,
  DeadLetterListOptions,
  DeadLetterView,
  Handler,
  HandlerContext,
  PublishContext,
  PublishMiddleware,
  PublishOptions,
  RequestOptions,
  SagaRegistration,
  StopOptions,
  SubscriptionOptions,
} from './bus-types.js';
export type { Clock, TimerHandle } from './clock.js';
export { sleep, systemClock } from './clock.js';
export type {
  CommandContract,
  Contract,
  ContractOptions,
  DataOf,
  EventContract,
  InputOf,
  ReplyInputOf,
  ReplyOf,
  RequestContract,
  Upcaster,
} from './contracts.js';
export { defineCommand, defineEvent, defineRequest, upcast, validate } from './contracts.js';
export { deadLetterHeaders } from './dead-letter-api.js';
export * from './errors.js';
export { deriveMessageId, newMessageId } from './ids.js';
export type { Message } from './message.js';
export type { Middleware } from './middleware.js';
export { compose } from './middleware.js';
export type { HandlingLogEntry, InboxOptions } from './middlewares.js';
export { inbox, logging } from './middlewares.js';
export {
  assertMessageType,
  assertPattern,
  assertQueueName,
  matchesHeaders,
  matchesPattern,
} from './names.js';
export * from './outbox-relay.js';
export { seededRandom } from './random.js';
export type { RetryPolicy } from './retry.js';
export { defaultRetryPolicy, nextRetryDelay, resolveRetryPolicy } from './retry.js';
export type {
  OnMissingInstance,
  SagaContext,
  SagaDescription,
  SagaOptions,
  SagaStep,
  Transition,
} from './saga.js';
export { defineSaga, describeSaga, Saga, sagaToMermaid } from './saga.js';
export { sagaTimeoutType } from './saga-runtime.js';
export { SlotSet, type Slotted } from './slot-set.js';
export type { InboxStore, SagaRecord, SagaStore } from './stores.js';
export { memoryDeadLetterStore, memoryInboxStore, memorySagaStore, pageDeadLetters } from './stores.js';
export type { EndpointDefinition, EventSelector, TopologyDefinition } from './topology.js';
export { defineTopology, toTransportTopology } from './topology.js';
export type * from './transport.js';
export type { ContentMode } from './wire.js';
export { copyEnvelope, decodeEnvelope, encodeMessage, envelopeSizeBytes } from './wire.js';
