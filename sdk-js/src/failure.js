// Why `handle` did not produce deliveries: `retry` (transient) or `reject` (permanent).

/**
 * A failure of `handle`. Throw one (`throw reject('…')`) and the host records the event's
 * attempt as `retry` (called again later, with backoff) or `reject` (dead at once).
 *
 * The message ends up in the event's attempt record: say what went wrong and with which
 * id, never a secret.
 */
export class Failure extends Error {
  /**
   * @param {'retry' | 'reject'} kind
   * @param {string} message
   */
  constructor(kind, message) {
    if (kind !== 'retry' && kind !== 'reject') {
      throw new TypeError(`a Failure is 'retry' or 'reject', not ${JSON.stringify(kind)}`);
    }
    super(String(message));
    /** @type {'retry' | 'reject'} */
    this.kind = kind;
  }

  /** A transient failure: the host retries the event later. */
  static retry(message) {
    return new Failure('retry', message);
  }

  /** A permanent failure: the event is marked dead. */
  static reject(message) {
    return new Failure('reject', message);
  }

  get name() {
    return 'Failure';
  }

  /** Whether the host will retry. */
  isRetry() {
    return this.kind === 'retry';
  }

  /**
   * The same kind of failure with `context` before the message
   * (`"refetching in_1: HTTP 404 …"`).
   */
  context(context) {
    return new Failure(this.kind, `${context}: ${this.message}`);
  }

  /** `retry: …` or `reject: …`, as the Rust SDK displays a failure. */
  toString() {
    return `${this.kind}: ${this.message}`;
  }
}

const BRAND = Symbol.for('switchyard.failure');
Object.defineProperty(Failure.prototype, BRAND, { value: true });

/**
 * Whether `value` is a `Failure` (also one made by another copy of the SDK, which
 * `instanceof` would miss).
 */
export function isFailure(value) {
  return value instanceof Failure || (value !== null && typeof value === 'object' && value[BRAND] === true &&
    (value.kind === 'retry' || value.kind === 'reject'));
}

/** A transient failure: `throw retry('upstream answered 503')`. */
export function retry(message) {
  return new Failure('retry', message);
}

/** A permanent failure: `throw reject('the event has no id')`. */
export function reject(message) {
  return new Failure('reject', message);
}

/**
 * Why a `ctx.fetch` got no response. It is a `Failure` too, so an uncaught one fails the
 * event the way the Rust SDK's `?` does: a denied URL is rejected (fix `allowed_hosts` and
 * replay), a timeout or a transport error is retried.
 */
export class FetchError extends Failure {
  /**
   * @param {'denied' | 'timeout' | 'transport'} error
   * @param {string} [detail] what the host said (none for `timeout`)
   */
  constructor(error, detail) {
    let message;
    switch (error) {
      case 'denied':
        message = `fetch denied: ${detail ?? ''}`;
        break;
      case 'timeout':
        message = 'fetch timed out';
        break;
      case 'transport':
        message = `fetch failed: ${detail ?? ''}`;
        break;
      default:
        throw new TypeError(
          `a FetchError is 'denied', 'timeout' or 'transport', not ${JSON.stringify(error)}`,
        );
    }
    super(error === 'denied' ? 'reject' : 'retry', message);
    /** @type {'denied' | 'timeout' | 'transport'} */
    this.error = error;
    /** @type {string | undefined} */
    this.detail = error === 'timeout' ? undefined : String(detail ?? '');
  }

  /** The URL is not in the connector's `allowed_hosts` (or is not a valid URL). */
  static denied(detail) {
    return new FetchError('denied', detail);
  }

  /** No answer within the host's timeout. */
  static timeout() {
    return new FetchError('timeout');
  }

  /** Connection, TLS or protocol failure. */
  static transport(detail) {
    return new FetchError('transport', detail);
  }

  get name() {
    return 'FetchError';
  }
}

/**
 * The host refused a `ctx.kv.set` (the key or value is too large). A refused write will be
 * refused again: uncaught, it rejects the event.
 */
export class KvError extends Failure {
  /** @param {string} detail what the host said */
  constructor(detail) {
    super('reject', `kv set failed: ${detail}`);
    /** @type {string} */
    this.detail = String(detail);
  }

  get name() {
    return 'KvError';
  }
}
