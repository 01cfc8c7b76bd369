// Generated from wit/connector.wit by scripts/gen-types.js (jco guest types). Do not edit:
// run `npm run gen-types` after changing the WIT.
declare module 'switchyard:connector/kv@0.1.1' {
  export function get(key: string): Uint8Array | undefined;
  /**
   * Fails when the key or value is larger than the host allows.
   */
  export function set(key: string, value: Uint8Array): void;
  export { _delete as delete };
  function _delete(key: string): void;
}
