// Declarations of @switchyard/sdk/test.

import type { Connector, Ctx, Delivery, Failure, FetchError, Level, Request, Response, Webhook, WebhookBuilder } from './index.js';

/** A `Result` as the Rust SDK's `TestHost` returns it; `unwrap` helpers do not affect equality. */
export type TestResult<T, E> = ({ ok: T } | { err: E }) & {
  /** The `ok` value, or throws. */
  unwrap(): T;
  /** The `err` value, or throws. */
  unwrapErr(): E;
};

export declare const MAX_KV_KEY_BYTES: 512;
export declare const MAX_KV_VALUE_BYTES: 65536;

/**
 * A stand-in for the Switchyard host in Node: mocked settings, fetches, kv and clock; records
 * fetches and logs. A fetch no route answers is `FetchError.denied(…)`.
 */
export declare class TestHost {
  constructor();
  setting(key: string, value: string): this;
  /** Answers `method` (`'*'`: any) to `url` (exact, else longest prefix) with `response`. */
  fetchResponse(method: string, url: string, response: Response): this;
  fetchError(method: string, url: string, error: FetchError): this;
  /** Answers what no route matches. */
  onFetch(handler: (request: Request) => Response | FetchError): this;
  kvEntry(key: string, value: Uint8Array | string): this;
  /** Sets the clock (unix ms; default 1 700 000 000 000). */
  now(ms: number): this;
  /**
   * `handle` with a `Ctx` backed by this host. Exceptions that are not a `Failure`
   * propagate. A promise when the connector's `handle` is async.
   */
  handle(connector: Connector, webhook: Webhook | WebhookBuilder): TestResult<Delivery[], Failure>;
  checkSettings(connector: Connector): TestResult<undefined, string>;
  dedupeKey(connector: Connector, webhook: Webhook | WebhookBuilder): string | undefined;
  ctx(): Ctx;
  fetches(): Request[];
  logs(): Array<[Level, string]>;
  kvValue(key: string): Uint8Array | undefined;
  kvText(key: string): string | undefined;
  kvSnapshot(): Map<string, Uint8Array>;
}

export declare function isFailure(value: unknown): value is Failure;
