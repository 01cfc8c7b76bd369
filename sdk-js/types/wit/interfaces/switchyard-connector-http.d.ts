// Generated from wit/connector.wit by scripts/gen-types.js (jco guest types). Do not edit:
// run `npm run gen-types` after changing the WIT.
/// <reference path="./switchyard-connector-types.d.ts" />
declare module 'switchyard:connector/http@0.1.1' {
  export function fetch(request: Request): Response;
  export type Header = import('switchyard:connector/types@0.1.1').Header;
  export interface Request {
    method: string,
    url: string,
    headers: Array<Header>,
    body: Uint8Array,
  }
  export interface Response {
    status: number,
    headers: Array<Header>,
    body: Uint8Array,
  }
  export type Error = ErrorDenied | ErrorTimeout | ErrorTransport;
  /**
   * The URL is not in the connector's `allowed_hosts` (or is not a valid URL).
   */
  export interface ErrorDenied {
    tag: 'denied',
    val: string,
  }
  /**
   * No answer within the host's timeout.
   */
  export interface ErrorTimeout {
    tag: 'timeout',
  }
  /**
   * Connection, TLS or protocol failure.
   */
  export interface ErrorTransport {
    tag: 'transport',
    val: string,
  }
}
