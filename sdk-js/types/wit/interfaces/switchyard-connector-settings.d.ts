// Generated from wit/connector.wit by scripts/gen-types.js (jco guest types). Do not edit:
// run `npm run gen-types` after changing the WIT.
declare module 'switchyard:connector/settings@0.1.1' {
  export function get(key: string): string | undefined;
}
