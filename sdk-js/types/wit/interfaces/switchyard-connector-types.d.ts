// Generated from wit/connector.wit by scripts/gen-types.js (jco guest types). Do not edit:
// run `npm run gen-types` after changing the WIT.
declare module 'switchyard:connector/types@0.1.1' {
  /**
   * An HTTP header. Names are lowercase as received by the host.
   */
  export type Header = [string, string];
  /**
   * One received webhook, exactly as the sender sent it (after verification).
   */
  export interface Webhook {
    /**
     * The host's event id (`01J…`, time-ordered); stable across retries and replays.
     */
    id: string,
    /**
     * The connector id from the operator's config (the `{connector}` in `/hooks/{connector}`).
     */
    connector: string,
    /**
     * `POST` (or `GET`/`HEAD` for validation pings, which are not dispatched).
     */
    method: string,
    /**
     * The request path, e.g. `/hooks/stripe`.
     */
    path: string,
    /**
     * The raw query string without `?` (may be empty).
     */
    query: string,
    /**
     * Request headers in the order received, names lowercase.
     */
    headers: Array<Header>,
    /**
     * The raw body bytes, exactly as signed.
     */
    body: Uint8Array,
    /**
     * When the host received it, unix milliseconds.
     */
    receivedAt: bigint,
    /**
     * 1 for the first call of `handle` for this event, 2 for the first retry, and so on.
     */
    attempt: number,
  }
  /**
   * An outbound HTTP request the host performs (with retries) after `handle` returns.
   */
  export interface Delivery {
    method: string,
    url: string,
    headers: Array<Header>,
    body: Uint8Array,
  }
  /**
   * Why `handle` did not produce deliveries.
   */
  export type Failure = FailureRetry | FailureReject;
  /**
   * A transient problem: the host calls `handle` again later, with backoff.
   */
  export interface FailureRetry {
    tag: 'retry',
    val: string,
  }
  /**
   * The event can never be handled: it is marked dead at once.
   */
  export interface FailureReject {
    tag: 'reject',
    val: string,
  }
  /**
   * A setting the connector reads (shown by `switchyard plugin inspect`).
   */
  export interface SettingInfo {
    name: string,
    description: string,
    required: boolean,
  }
  /**
   * What the connector is.
   */
  export interface Manifest {
    name: string,
    version: string,
    description: string,
    /**
     * The signature scheme used when the operator does not set one:
     * `stripe`, `standard-webhooks`, `github`, `hmac-sha256`, `mandrill`, `token` or `none`.
     */
    defaultScheme: string,
    settings: Array<SettingInfo>,
  }
}
