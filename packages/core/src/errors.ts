/**
 * Every error Courier throws or reports. Each class has a stable `code` that users can match on;
 * docs/errors.md lists every code (a test keeps the two in step).
 */

/** Options accepted by every Courier error. */
export interface CourierErrorOptions {
  cause?: unknown;
}

/** Base class of every Courier error. `code` is stable across versions; `message` is for people. */
export class CourierError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options: CourierErrorOptions = {}) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.code = code;
    this.name = new.target.name;
  }
}

/** A message's data does not match its contract's schema. `issues` name the paths at fault. */
export class ValidationError extends CourierError {
  static readonly code = 'COURIER_VALIDATION';
  readonly issues: readonly { path: string; message: string }[];
  constructor(
    message: string,
    issues: readonly { path: string; message: string }[] = [],
    options?: CourierErrorOptions,
  ) {
    super(ValidationError.code, message, options);
    this.issues = issues;
  }
}

/** A command has no owning endpoint, or was sent to a queue that does not exist. */
export class NoRouteError extends CourierError {
  static readonly code = 'COURIER_NO_ROUTE';
  constructor(message: string, options?: CourierErrorOptions) {
    super(NoRouteError.code, message, options);
  }
}

/** A request got no reply within its timeout. The request may still have run. */
export class TimeoutError extends CourierError {
  static readonly code = 'COURIER_TIMEOUT';
  constructor(message: string, options?: CourierErrorOptions) {
    super(TimeoutError.code, message, options);
  }
}

/** The bus or transport was used after `stop()`/`close()`. */
export class ClosedError extends CourierError {
  static readonly code = 'COURIER_CLOSED';
  constructor(message: string, options?: CourierErrorOptions) {
    super(ClosedError.code, message, options);
  }
}

/** The broker failed or refused an operation (connection lost, publish not confirmed, ...). */
export class TransportError extends CourierError {
  static readonly code = 'COURIER_TRANSPORT';
  constructor(message: string, options?: CourierErrorOptions) {
    super(TransportError.code, message, options);
  }
}

/** A received body is not a valid CloudEvent of a known shape. Such messages are dead-lettered (`decode`). */
export class DecodeError extends CourierError {
  static readonly code = 'COURIER_DECODE';
  constructor(message: string, options?: CourierErrorOptions) {
    super(DecodeError.code, message, options);
  }
}

/** A message is larger than `maxMessageBytes`. */
export class MessageTooLargeError extends CourierError {
  static readonly code = 'COURIER_TOO_LARGE';
  readonly sizeBytes: number;
  readonly maxBytes: number;
  constructor(message: string, sizeBytes: number, maxBytes: number, options?: CourierErrorOptions) {
    super(MessageTooLargeError.code, message, options);
    this.sizeBytes = sizeBytes;
    this.maxBytes = maxBytes;
  }
}

/** A queue, endpoint or message type name breaks the naming rules (DESIGN.md §1). */
export class InvalidNameError extends CourierError {
  static readonly code = 'COURIER_INVALID_NAME';
  constructor(message: string, options?: CourierErrorOptions) {
    super(InvalidNameError.code, message, options);
  }
}

/** An option passed to Courier is missing, of the wrong type or out of range. */
export class ConfigurationError extends CourierError {
  static readonly code = 'COURIER_CONFIGURATION';
  constructor(message: string, options?: CourierErrorOptions) {
    super(ConfigurationError.code, message, options);
  }
}

/** The transport cannot provide a capability that the configuration asks for, and the core cannot emulate it. */
export class UnsupportedError extends CourierError {
  static readonly code = 'COURIER_UNSUPPORTED';
  constructor(message: string, options?: CourierErrorOptions) {
    super(UnsupportedError.code, message, options);
  }
}

/**
 * Throw from a handler to skip the remaining retries: the message goes straight to the dead-letter
 * queue with reason `rejected`.
 */
export class NonRetryableError extends CourierError {
  static readonly code = 'COURIER_NON_RETRYABLE';
  constructor(message: string, options?: CourierErrorOptions) {
    super(NonRetryableError.code, message, options);
  }
}

/**
 * Throw from a handler to ask for a redelivery after `delayMs` instead of the retry policy's
 * backoff. It counts as an attempt.
 */
export class DelayedRetry extends CourierError {
  static readonly code = 'COURIER_DELAYED_RETRY';
  readonly delayMs: number;
  constructor(delayMs: number, message = `retry requested in ${delayMs} ms`, options?: CourierErrorOptions) {
    super(DelayedRetry.code, message, options);
    this.delayMs = delayMs;
  }
}

/**
 * The error a requester receives when the request's handler failed. `remoteName`, `remoteCode` and
 * the message are the remote error's.
 */
export class RemoteError extends CourierError {
  static readonly code = 'COURIER_REMOTE';
  readonly remoteName: string;
  readonly remoteCode: string | undefined;
  constructor(
    remoteName: string,
    remoteCode: string | undefined,
    message: string,
    options?: CourierErrorOptions,
  ) {
    super(RemoteError.code, message, options);
    this.remoteName = remoteName;
    this.remoteCode = remoteCode;
  }
}

/** A handler ran past its `timeoutMs`. It is treated like a thrown error (retried by policy). */
export class HandlerTimeoutError extends CourierError {
  static readonly code = 'COURIER_HANDLER_TIMEOUT';
  constructor(message: string, options?: CourierErrorOptions) {
    super(HandlerTimeoutError.code, message, options);
  }
}

/** Every error class, for tools and for the test that keeps docs/errors.md complete. */
export const errorClasses = [
  ValidationError,
  NoRouteError,
  TimeoutError,
  ClosedError,
  TransportError,
  DecodeError,
  MessageTooLargeError,
  InvalidNameError,
  ConfigurationError,
  UnsupportedError,
  NonRetryableError,
  DelayedRetry,
  RemoteError,
  HandlerTimeoutError,
] as const;
