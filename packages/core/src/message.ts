/**
 * A message as handlers and publishers see it (DESIGN.md §1): decoded data plus its metadata.
 * On the wire it is a CloudEvent (see `wire.ts`).
 */
export interface Message<T = unknown> {
  readonly id: string;
  readonly type: string;
  /** Contract version the data was written with (1 when unversioned). */
  readonly version: number;
  readonly data: T;
  /** The user's headers (CloudEvents attributes are separate fields). */
  readonly headers: Readonly<Record<string, string>>;
  /** ISO 8601 time of the publish. */
  readonly time: string;
  /** The publishing endpoint. */
  readonly source: string;
  /** Shared by every message of one conversation; the first message's id when none is given. */
  readonly correlationId: string;
  /** Id of the message whose handler produced this one. */
  readonly causationId?: string | undefined;
  readonly key?: string | undefined;
  /** 0 to 9, default 0. */
  readonly priority: number;
  /** Epoch ms. */
  readonly deliverAt?: number | undefined;
  /** Epoch ms. */
  readonly expiresAt?: number | undefined;
  /** Queue a reply goes to (requests). */
  readonly replyTo?: string | undefined;
  readonly traceparent?: string | undefined;
  readonly dedupId?: string | undefined;
}
