// @switchyard/sdk: write Switchyard webhook connectors in JavaScript.
//
// A connector module default-exports `defineConnector({ manifest, dedupeKey, handle,
// checkSettings })`. `switchyard-js build` turns it into a WebAssembly component the host
// loads; under `node --test` the same code runs against `TestHost` (@switchyard/sdk/test).

export { WIT_VERSION, defineConnector, isConnector } from './connector.js';
export { Ctx, Kv, LEVELS } from './ctx.js';
export { Failure, FetchError, KvError, isFailure, reject, retry } from './failure.js';
export { Form, FormValue } from './form.js';
export { Delivery, Request, Response } from './http.js';
export { compareCodePoints, stringify } from './json.js';
export { quoted } from './quoted.js';
export { Webhook, WebhookBuilder } from './webhook.js';
