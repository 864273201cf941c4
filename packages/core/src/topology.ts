import type { CommandContract, EventContract, RequestContract } from './contracts.js';
import { ConfigurationError } from './errors.js';
import { assertPattern, assertQueueName } from './names.js';
import type { BindingSpec, QueueSpec, Topology } from './transport.js';

/** An event subscription in a topology: a contract, a pattern, or a pattern with a header filter. */
export type EventSelector = EventContract | string | { pattern: string; headers?: Record<string, string> };

/** What one endpoint takes: events routed to its queue, commands it owns. */
export interface EndpointDefinition {
  /** Events routed into the endpoint's queue. */
  events?: readonly EventSelector[];
  /** Commands and requests the endpoint owns. */
  commands?: readonly (CommandContract | RequestContract)[];
}

/** The whole system: which endpoint takes which events and owns which commands (DESIGN.md §2.5). */
export interface TopologyDefinition {
  readonly endpoints: Readonly<Record<string, EndpointDefinition>>;
}

/**
 * Declares the system's topology from the shared contracts, so any process can create every queue
 * and binding: an event published before its subscriber first starts is kept for it.
 * @example defineTopology({ endpoints: { inventory: { events: [OrderPlaced], commands: [ReleaseStock] } } })
 */
export function defineTopology(definition: TopologyDefinition): TopologyDefinition {
  const owners = new Map<string, string>();
  for (const [endpoint, def] of Object.entries(definition.endpoints)) {
    assertQueueName(endpoint, 'endpoint name');
    for (const selector of def.events ?? []) assertPattern(selectorPattern(selector));
    for (const command of def.commands ?? []) {
      const owner = owners.get(command.type);
      if (owner !== undefined && owner !== endpoint) {
        throw new ConfigurationError(
          `command '${command.type}' is owned by both '${owner}' and '${endpoint}': a command has one owner`,
        );
      }
      owners.set(command.type, endpoint);
    }
  }
  return definition;
}

function selectorPattern(selector: EventSelector): string {
  if (typeof selector === 'string') return selector;
  return 'pattern' in selector ? selector.pattern : selector.type;
}

/** Queues and bindings the transport must hold for `definition`. */
export function toTransportTopology(definition: TopologyDefinition | undefined): Topology {
  const queues: QueueSpec[] = [];
  const bindings: BindingSpec[] = [];
  for (const [endpoint, def] of Object.entries(definition?.endpoints ?? {})) {
    queues.push({ name: endpoint });
    for (const selector of def.events ?? []) {
      const headers = typeof selector === 'object' && 'pattern' in selector ? selector.headers : undefined;
      bindings.push(
        headers
          ? { queue: endpoint, pattern: selectorPattern(selector), headers }
          : { queue: endpoint, pattern: selectorPattern(selector) },
      );
    }
  }
  return { queues, bindings };
}

/** Command type to owning endpoint, from `definition`. */
export function commandOwners(definition: TopologyDefinition | undefined): Map<string, string> {
  const owners = new Map<string, string>();
  for (const [endpoint, def] of Object.entries(definition?.endpoints ?? {})) {
    for (const command of def.commands ?? []) owners.set(command.type, endpoint);
  }
  return owners;
}
