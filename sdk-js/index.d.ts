// Declarations of @switchyard/sdk, for editors and `tsc --checkJs`. The WIT types come from
// types/wit/ (generated from wit/connector.wit by jco; see scripts/gen-types.js).

/// <reference path="./types/wit/connector.d.ts" />

import type {
  Header as WitHeader,
  Webhook as WitWebhook,
  Delivery as WitDelivery,
  Manifest as WitManifest,
  SettingInfo as WitSettingInfo,
} from 'switchyard:connector/types@0.1.1';
import type { Level as WitLevel } from 'switchyard:connector/log@0.1.1';

/** The version of the WIT contract (`switchyard:connector@…`) this SDK builds against. */
export declare const WIT_VERSION: '0.1.1';

/** An HTTP header: `[name, value]`. */
export type Header = WitHeader;

/** A log level. */
export type Level = WitLevel;
export declare const LEVELS: readonly Level[];

/** Bytes, or text sent as UTF-8. */
export type BodyInit = Uint8Array | ArrayBuffer | ArrayBufferView | string | number[];

// ---------------------------------------------------------------------------------------
// Failures

/**
 * A failure of `handle`: throw one (`throw reject('…')`). `retry`: the host calls `handle`
 * again later, with backoff. `reject`: the event is dead at once.
 */
export declare class Failure extends Error {
  constructor(kind: 'retry' | 'reject', message: string);
  readonly kind: 'retry' | 'reject';
  static retry(message: string): Failure;
  static reject(message: string): Failure;
  /** Whether the host will retry. */
  isRetry(): boolean;
  /** The same kind with `context: ` before the message. */
  context(context: string): Failure;
  /** `retry: …` or `reject: …`. */
  toString(): string;
}

/** A transient failure: `throw retry('upstream answered 503')`. */
export declare function retry(message: string): Failure;
/** A permanent failure: `throw reject('the event has no id')`. */
export declare function reject(message: string): Failure;
/** Whether `value` is a `Failure` (also from another copy of the SDK). */
export declare function isFailure(value: unknown): value is Failure;

/**
 * Why a `ctx.fetch` got no response; a `Failure` too (denied → reject, timeout/transport →
 * retry), so an uncaught one fails the event as the Rust SDK's `?` does.
 */
export declare class FetchError extends Failure {
  constructor(error: 'denied' | 'timeout' | 'transport', detail?: string);
  readonly error: 'denied' | 'timeout' | 'transport';
  /** What the host said (none for `timeout`). */
  readonly detail: string | undefined;
  static denied(detail: string): FetchError;
  static timeout(): FetchError;
  static transport(detail: string): FetchError;
}

/** The host refused a `ctx.kv.set` (too large): a rejection. */
export declare class KvError extends Failure {
  constructor(detail: string);
  readonly detail: string;
}

// ---------------------------------------------------------------------------------------
// The webhook

/** One received webhook, exactly as the sender sent it (after the host verified it). */
export declare class Webhook {
  /** Built from the WIT record (`receivedAt` may be a bigint there). */
  constructor(fields: Omit<WitWebhook, 'receivedAt' | 'body'> & { receivedAt: number | bigint; body: BodyInit });
  /** The host's event id (`01J…`, time-ordered); stable across retries and replays. */
  id: string;
  /** The connector id from the operator's config (`/hooks/{connector}`). */
  connector: string;
  /** The HTTP method, `POST` for every dispatched event. */
  method: string;
  /** The request path, e.g. `/hooks/stripe`. */
  path: string;
  /** The raw query string without `?` (may be empty). */
  query: string;
  /** Request headers in the order received, names lowercase. */
  headers: Header[];
  /** The raw body bytes, exactly as signed. */
  body: Uint8Array;
  /** When the host received it, unix milliseconds. */
  receivedAt: number;
  /** 1 for the first call of `handle` for this event, 2 for the first retry, and so on. */
  attempt: number;

  /** A builder for tests. */
  static builder(): WebhookBuilder;
  /** The first header named `name` (case-insensitive). */
  header(name: string): string | undefined;
  /** Every value of the headers named `name` (case-insensitive), in order. */
  headerAll(name: string): string[];
  /** The body as UTF-8 text; throws a rejection when it is not UTF-8. */
  text(): string;
  /** The body parsed as JSON; throws a rejection (`body is not valid JSON: …`) when it is not. */
  json<T = any>(): T;
  /** The body as a form (`application/x-www-form-urlencoded`, PHP-style brackets). */
  form(): Form;
  /** The first query-string parameter named `name`, percent-decoded. */
  queryParam(name: string): string | undefined;
}

/** Options of the JSON helpers. */
export interface JsonOptions {
  /**
   * Sort every object's keys by code point, as `serde_json` writes a `Value` (for output
   * byte-identical to a Rust connector's). Default: `JSON.stringify`'s insertion order.
   */
  sortKeys?: boolean;
}

/** Form pairs: `[name, value]` pairs (names may repeat) or a flat object. */
export type FormPairs =
  | ReadonlyArray<readonly [string, string | number | boolean | bigint]>
  | Readonly<Record<string, string | number | boolean | bigint | null | undefined>>;

/**
 * Builds a `Webhook` for tests. Defaults: id `01TESTEVENT000000000000000`, connector
 * `test`, method `POST`, path `/hooks/{connector}`, empty query, headers and body,
 * `receivedAt` 0, attempt 1.
 */
export declare class WebhookBuilder {
  id(id: string): this;
  /** Also sets the default path `/hooks/{connector}`. */
  connector(connector: string): this;
  method(method: string): this;
  path(path: string): this;
  /** The raw query string, without `?`. */
  query(query: string): this;
  /** Appends a header; the name is lowercased as the host does. */
  header(name: string, value: string): this;
  body(body: BodyInit): this;
  /** Body as JSON, `content-type: application/json`. */
  json(value: unknown, options?: JsonOptions): this;
  /** Body form-encoded, `content-type: application/x-www-form-urlencoded`. */
  form(pairs: FormPairs): this;
  receivedAt(ms: number): this;
  attempt(attempt: number): this;
  build(): Webhook;
}

/** A node of a `Form`'s nested view. */
export declare class FormValue {
  readonly kind: 'text' | 'list' | 'map';
  /** The leaf text, if this is a leaf. */
  asStr(): string | undefined;
  /** The items, if this is a list. */
  asList(): FormValue[] | undefined;
  /** The entries sorted by key, if this is a map. */
  asMap(): Map<string, FormValue> | undefined;
  /** A map's child by key, a list's by index (`"0"`). */
  get(key: string): FormValue | undefined;
  /** Strings, arrays and objects. */
  toJson(): FormJson;
}

/** A form's nested view as JSON values. */
export type FormJson = string | FormJson[] | { [key: string]: FormJson };

/**
 * A parsed form body. Flat: `get('data[merges][FNAME]')`; nested, as PHP builds `$_POST`:
 * `field('data')`, `path(['data', 'merges', 'FNAME'])`, `toJson()`.
 */
export declare class Form {
  /** Parses form-encoded bytes or text; never fails on content. */
  static parse(body: Uint8Array | string): Form;
  /** The value of `name` exactly as sent; the last one when it repeats. */
  get(name: string): string | undefined;
  /** Every value of `name` exactly as sent, in order. */
  getAll(name: string): string[];
  /** The decoded pairs in the order received. */
  pairs(): Array<[string, string]>;
  /** A top-level field of the nested view. */
  field(name: string): FormValue | undefined;
  /** Walks the nested view; list items by index. */
  path(path: readonly string[]): FormValue | undefined;
  /** The nested view as a plain object (every leaf a string). */
  toJson(): { [key: string]: FormJson };
}

// ---------------------------------------------------------------------------------------
// Outbound HTTP

declare class OutboundRequest {
  constructor(method: string, url: string);
  method: string;
  url: string;
  headers: Header[];
  static get<T extends OutboundRequest>(this: new (method: string, url: string) => T, url: string): T;
  static post<T extends OutboundRequest>(this: new (method: string, url: string) => T, url: string): T;
  static put<T extends OutboundRequest>(this: new (method: string, url: string) => T, url: string): T;
  static patch<T extends OutboundRequest>(this: new (method: string, url: string) => T, url: string): T;
  static delete<T extends OutboundRequest>(this: new (method: string, url: string) => T, url: string): T;
  /** Appends a header (repeat it for a multi-valued header). */
  header(name: string, value: string): this;
  /** `authorization: Bearer {token}`, replacing an earlier one. */
  bearerAuth(token: string): this;
  /** Body as JSON + `content-type: application/json`; throws a rejection when it has no JSON. */
  json(value: unknown, options?: JsonOptions): this;
  /** Body form-encoded + `content-type: application/x-www-form-urlencoded`. */
  form(pairs: FormPairs): this;
  /** Sets the raw body (set a content-type yourself). */
  body(body: BodyInit): this;
  /** The body bytes. */
  body(): Uint8Array;
  /** The body as text, for assertions. */
  text(): string;
  /** The first header named `name` (case-insensitive). */
  headerValue(name: string): string | undefined;
}

/**
 * An outbound HTTP request the host performs after `handle` returns, with retries and an
 * `Idempotency-Key` that stays the same across them.
 */
export declare class Delivery extends OutboundRequest {}

/** An HTTP request performed at once by `ctx.fetch`. */
export declare class Request extends OutboundRequest {}

/** The answer to a `ctx.fetch`. */
export declare class Response {
  constructor(status: number, headers?: Header[], body?: BodyInit);
  status: number;
  /** Names lowercase. */
  headers: Header[];
  body: Uint8Array;
  /** Appends a header (lowercased). */
  withHeader(name: string, value: string): this;
  withBody(body: BodyInit): this;
  /** Body as JSON + `content-type: application/json`. */
  withJson(value: unknown, options?: JsonOptions): this;
  /** Whether the status is 2xx. */
  isSuccess(): boolean;
  header(name: string): string | undefined;
  /** The body as UTF-8; throws a retry when it is not. */
  text(): string;
  /** The body as JSON; throws a retry when it is not. */
  json<T = any>(): T;
  /** This response when 2xx, else throws: retry for 408/425/429/5xx, reject otherwise. */
  errorForStatus(): this;
}

// ---------------------------------------------------------------------------------------
// Ctx

/** The connector's key-value state (keys ≤ 512 bytes, values ≤ 64 KiB). */
export declare class Kv {
  get(key: string): Uint8Array | undefined;
  getString(key: string): string | undefined;
  /** Throws a `KvError` (a rejection) when the host refuses it. */
  set(key: string, value: BodyInit): void;
  delete(key: string): void;
}

/** `ctx.log(level, message)`, also `ctx.log.info(message)` and so on. */
export interface Log {
  (level: Level, message: string): void;
  trace(message: string): void;
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
}

/** The capabilities of one `handle` (or `checkSettings`) call. */
export declare class Ctx {
  /** The operator's `[connector.settings]` value (non-strings as JSON text). */
  setting(key: string): string | undefined;
  settingOr(key: string, fallback: string): string;
  /** Throws a rejection naming the setting when it is missing or empty. */
  requireSetting(key: string): string;
  /** `true`/`false`, `1`/`0`, `yes`/`no`, `on`/`off`; absent is false; else a rejection. */
  settingBool(key: string): boolean;
  /** A JSON setting; `undefined` when absent; a rejection when it does not parse. */
  settingJson<T = any>(key: string): T | undefined;
  /** Performs `request` now; throws a `FetchError` when there is no response. */
  fetch(request: Request): Response;
  readonly kv: Kv;
  readonly log: Log;
  trace(message: string): void;
  debug(message: string): void;
  info(message: string): void;
  warn(message: string): void;
  error(message: string): void;
  /** The host's clock, unix ms (`Date.now()` is frozen in the component). */
  now(): number;
}

// ---------------------------------------------------------------------------------------
// Connectors

/** A setting the connector reads. */
export interface SettingInfo {
  name: string;
  description?: string;
  /** Default false. */
  required?: boolean;
}

/** What the connector is. */
export interface ManifestInit {
  name: string;
  version: string;
  description?: string;
  /**
   * The signature scheme used when the operator does not set one: `stripe`,
   * `standard-webhooks`, `github`, `hmac-sha256`, `mandrill`, `token` or `none` (default).
   */
  defaultScheme?: string;
  settings?: SettingInfo[];
}

/** What `defineConnector` takes. */
export interface ConnectorDefinition {
  manifest: ManifestInit;
  /**
   * The key the host dedupes on; `undefined` for none. Runs on the ingress path with no
   * capabilities: derive it from the webhook alone.
   */
  dedupeKey?(webhook: Webhook): string | undefined | null;
  /**
   * What to do with one event: the deliveries (`[]` for none). Throw a `Failure` to retry or
   * reject; any other exception traps, which the host retries like a Rust panic.
   */
  handle(webhook: Webhook, ctx: Ctx): Array<Delivery | WitDelivery> | Promise<Array<Delivery | WitDelivery>>;
  /**
   * Checks the operator's settings at load: return nothing to accept them, or a message
   * (or throw a `Failure`) naming what is wrong.
   */
  checkSettings?(ctx: Ctx): string | void | undefined | null | Promise<string | void | undefined | null>;
}

/** A connector: the default export of a connector's entry module. */
export interface Connector {
  readonly manifest: Readonly<WitManifest> & { readonly settings: readonly Readonly<WitSettingInfo>[] };
  readonly handle: ConnectorDefinition['handle'];
  readonly dedupeKey: ConnectorDefinition['dedupeKey'] | undefined;
  readonly checkSettings: ConnectorDefinition['checkSettings'] | undefined;
}

/** Defines a connector (`export default defineConnector({ … })`). */
export declare function defineConnector(definition: ConnectorDefinition): Connector;
/** Whether `value` came from `defineConnector`. */
export declare function isConnector(value: unknown): value is Connector;

// ---------------------------------------------------------------------------------------
// Helpers

/** JSON text (`JSON.stringify`, or keys sorted by code point with `sortKeys`). */
export declare function stringify(value: unknown, options?: JsonOptions): string;
/** Compares strings by code point (= UTF-8 byte order). */
export declare function compareCodePoints(a: string, b: string): number;
/** `text` quoted and escaped as Rust's `{:?}` does, for messages that match a Rust connector's. */
export declare function quoted(text: string): string;
