// Generated from wit/connector.wit by scripts/gen-types.js (jco guest types). Do not edit:
// run `npm run gen-types` after changing the WIT.
/// <reference path="./interfaces/switchyard-connector-clock.d.ts" />
/// <reference path="./interfaces/switchyard-connector-http.d.ts" />
/// <reference path="./interfaces/switchyard-connector-kv.d.ts" />
/// <reference path="./interfaces/switchyard-connector-log.d.ts" />
/// <reference path="./interfaces/switchyard-connector-settings.d.ts" />
/// <reference path="./interfaces/switchyard-connector-types.d.ts" />
declare module 'switchyard:connector/connector@0.1.1' {
  export type Manifest = import('switchyard:connector/types@0.1.1').Manifest;
  export type Webhook = import('switchyard:connector/types@0.1.1').Webhook;
  export type Delivery = import('switchyard:connector/types@0.1.1').Delivery;
  export type Failure = import('switchyard:connector/types@0.1.1').Failure;
  export type * as SwitchyardConnectorClock011 from 'switchyard:connector/clock@0.1.1'; // import switchyard:connector/clock@0.1.1
  export type * as SwitchyardConnectorHttp011 from 'switchyard:connector/http@0.1.1'; // import switchyard:connector/http@0.1.1
  export type * as SwitchyardConnectorKv011 from 'switchyard:connector/kv@0.1.1'; // import switchyard:connector/kv@0.1.1
  export type * as SwitchyardConnectorLog011 from 'switchyard:connector/log@0.1.1'; // import switchyard:connector/log@0.1.1
  export type * as SwitchyardConnectorSettings011 from 'switchyard:connector/settings@0.1.1'; // import switchyard:connector/settings@0.1.1
  export type * as SwitchyardConnectorTypes011 from 'switchyard:connector/types@0.1.1'; // import switchyard:connector/types@0.1.1
  /**
  * Describes the connector; called once when it is loaded.
  */
  export function manifest(): Manifest;
  /**
  * The key the host dedupes on (e.g. Stripe's `evt_…` id); `none` disables dedupe for
  * this request. Called on the ingress path: keep it cheap and free of imports. The
  * host may reuse an instance across `dedupe-key` calls: derive the key from `webhook`
  * alone. (`handle` always runs in a fresh instance.)
  */
  export function dedupeKey(webhook: Webhook): string | undefined;
  /**
  * Decide what to do with one event.
  */
  export function handle(webhook: Webhook): Array<Delivery>;
  /**
  * Check the operator's settings (through `settings.get`) when the host loads the
  * connector or its config changes, before any event: `err` says what is wrong, naming
  * the setting (and the part of it), and the host refuses that config (the previous
  * one keeps serving). Called in a fresh instance; the other imports work as in
  * `handle`, but keep it to reading settings. Since 0.1.1.
  */
  export function checkSettings(): void;
  export type Option<T> = { tag: 'none' } | { tag: 'some', val: T };
  export type Result<T, E> = { tag: 'ok', val: T } | { tag: 'err', val: E };
}
