//! Queue destinations: one delivery published to a message broker instead of POSTed over
//! HTTP, when its URL's scheme names one (`nats://`, `amqp://`/`amqps://`,
//! `redis://`/`rediss://`).
//!
//! [`Brokers::publish`] returns only once the broker has *confirmed* the message: a
//! JetStream `PubAck`, a RabbitMQ publisher confirm, a Redis `XADD` reply. Anything else
//! is an error, sorted by what the delivery should do about it ([`BrokerError`]). The
//! delivery's headers travel with it (`Idempotency-Key` and any Standard Webhooks signature
//! headers), and the `Idempotency-Key` is what each broker dedupes on, so a retry after a
//! lost confirmation does not become a second message where the broker can help it.
//!
//! # URLs and what goes on the wire
//!
//! **NATS**: `nats://[user:pass@]host[:port]/subject`. The subject is the path without
//! its leading slash (`/orders.created` → `orders.created`); no wildcards (`*`, `>`), no
//! empty tokens. Every delivery header becomes a NATS header, and `Nats-Msg-Id` is set to
//! the `Idempotency-Key`.
//! - When a JetStream stream takes the subject, the message goes through JetStream and
//!   the answer waits for its `PubAck`; a re-send of the same key within the stream's
//!   duplicate window (`duplicate_window`, 2 minutes by default) is acknowledged as a
//!   duplicate and not stored twice ([`Published::duplicate`]).
//! - When none does (or the server or account runs without JetStream), the message is
//!   published on core NATS and the connection flushed: the server has received it, which
//!   is all core NATS can confirm. Nothing is kept for a subscriber that is not listening,
//!   and consumers dedupe on the `Nats-Msg-Id` header themselves.
//!
//! Which stream takes a subject is asked of JetStream's API (stream names filtered by the
//! subject), not learnt from a publish answered "no responders": a JetStream publish is a
//! request, and a core subscriber on the subject would receive it and never answer. A
//! stream found is remembered per connection (until it stops answering); a subject no
//! stream takes is asked about on every publish, so a stream created later takes the
//! next message. A remembered stream that stops answering is an error to retry, never a
//! reason to send past it on core NATS.
//!
//! **RabbitMQ**: `amqp[s]://[user:pass@]host[:port][/vhost][?exchange=NAME&routing_key=KEY]`.
//! No credentials means `guest:guest`; no path (or `/`) means the default vhost `/`,
//! otherwise the path is the vhost, percent-decoded (`/%2f` is `/` too). `exchange`
//! defaults to `""`, the default exchange, which routes to the queue named by
//! `routing_key` (required then); with a named exchange `routing_key` defaults to `""`.
//! Each publish is `mandatory` on a channel in confirm mode, persistent
//! (`delivery_mode = 2`), with `message_id` = the `Idempotency-Key`, `content_type` from a
//! `Content-Type` header, a `timestamp`, and every header (`Content-Type` included) in the
//! AMQP `headers` table as a long string. A `basic.ack` is success; a `basic.nack`, or a
//! message returned as unroutable, is an error. RabbitMQ does not dedupe: consumers dedupe
//! on `message_id`.
//!
//! **Redis Streams**: `redis[s]://[user:pass@]host[:port]/STREAM[?db=N&maxlen=N]`. The
//! path is the stream's key (percent-decoded); the database is `db` (default 0), never
//! the path as in other Redis URLs, so an all-digit path is refused as ambiguous. One
//! Lua script, atomic on the server, does:
//! ```text
//! GET switchyard:idem:{STREAM}:<key>          → an id: answer "duplicate of <id>", stop
//! XADD STREAM [MAXLEN ~ N] * idempotency_key <key> body <bytes> header:<name> <value>…
//! SET switchyard:idem:{STREAM}:<key> <new id> EX 604800   (7 days)
//! ```
//! The marker is set only after the `XADD` succeeded (a script's failed command does not
//! undo the ones before it), so a failed add leaves nothing that would pass a re-send off
//! as a duplicate. The `{STREAM}` hash tag keeps the marker in the stream's cluster slot.
//! Header names are lower-cased in the field names (`header:webhook-signature`). Without
//! an `Idempotency-Key` header the entry is added without the check.
//!
//! # Connections
//! One connection per broker origin (scheme, credentials, host, port, and the vhost or
//! database), opened on first use and kept in [`Brokers`]. Redis' connection manager
//! reconnects by itself. A NATS client that is not connected, and a RabbitMQ connection
//! that is no longer open, are replaced on the next publish (a NATS client waiting to
//! reconnect would only buffer until the timeout; a fresh connect says "unreachable" at
//! once). RabbitMQ channels are pooled per connection and
//! a channel serves one publish at a time, so a channel the broker closed (a missing
//! exchange) fails only the publish that caused it.
//!
//! # A timeout is not a "no"
//! When the timeout passes after the message was sent but before the confirmation came,
//! the broker may still have it. The error is [`BrokerError::Unavailable`], the delivery is
//! retried with the same key, and JetStream (within its duplicate window) and the Redis
//! script (within 7 days) drop the second copy; RabbitMQ and core NATS consumers see
//! the same `Idempotency-Key` twice and dedupe on it.

mod nats;
mod rabbitmq;
mod redis_streams;
mod target;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use target::Target;
pub use target::check_url;

/// The header each broker dedupes on (and the one the delivery path always sets).
pub const IDEMPOTENCY_KEY: &str = "Idempotency-Key";

/// How long the Redis publisher remembers a key (the script's marker), matching the host's
/// default dedupe window.
pub const REDIS_DEDUPE_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// The timeouts a cached connection keeps for later requests (JetStream acks and API
/// calls, Redis replies): a backstop only, each publish has its own timeout around it.
/// At least this long, so a first publish with a short timeout does not cut later ones.
const BACKSTOP: Duration = Duration::from_secs(60);

/// The schemes [`Brokers`] publishes to.
const SCHEMES: [&str; 5] = ["nats", "amqp", "amqps", "redis", "rediss"];

/// Connections cached per broker origin; cheap to clone (clones share the connections).
#[derive(Clone, Default)]
pub struct Brokers {
    inner: Arc<Inner>,
}

#[derive(Default)]
struct Inner {
    /// NATS clients (each with its JetStream context), by origin.
    nats: Pool<nats::Conn>,
    /// RabbitMQ connections (each with its idle confirm channels), by origin and vhost.
    amqp: Pool<rabbitmq::Conn>,
    /// Redis connection managers, by origin and database.
    redis: Pool<redis_streams::Conn>,
}

impl std::fmt::Debug for Brokers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Brokers").finish_non_exhaustive()
    }
}

/// What the broker confirmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Published {
    /// For the attempt log: `jetstream stream ORDERS seq 42`, `redis stream x id
    /// 1700000000000-0`, `duplicate of redis stream x id …`.
    pub detail: String,
    /// The broker already had this `Idempotency-Key` and kept the earlier message
    /// (a JetStream duplicate, or the Redis marker): success, nothing new was stored.
    pub duplicate: bool,
}

/// Why a publish did not get its confirmation.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum BrokerError {
    /// The URL cannot be published to (permanent: the delivery goes dead).
    #[error("invalid broker URL: {0}")]
    InvalidUrl(String),
    /// The broker could not be reached, did not confirm in time, or said "not now"
    /// (a nack, out of memory, a stream not answering): transient, retried.
    #[error("broker unavailable: {0}")]
    Unavailable(String),
    /// The broker answered and refused this message for a reason a re-send will not change
    /// until an operator acts: the exchange or vhost does not exist, no queue is bound for
    /// the routing key, access is denied, the credentials are wrong, the Redis key is not
    /// a stream, the message is too large. Permanent, like an HTTP 4xx: the delivery goes
    /// dead, and is replayed once the broker is fixed.
    #[error("broker refused the message: {0}")]
    Refused(String),
}

impl BrokerError {
    /// Whether the delivery should stop (dead) rather than be retried.
    pub fn is_permanent(&self) -> bool {
        !matches!(self, BrokerError::Unavailable(_))
    }
}

impl Brokers {
    /// Whether `url` is a broker URL this module publishes to (by its scheme alone; see
    /// [`check_url`] for the rest).
    pub fn handles(url: &str) -> bool {
        url.split_once("://").is_some_and(|(scheme, _)| {
            SCHEMES
                .iter()
                .any(|known| scheme.eq_ignore_ascii_case(known))
        })
    }

    /// Publish `body` with `headers` to the broker `url` names and return once the broker
    /// confirmed it; `Err` on anything else, within `timeout` (connecting included).
    #[tracing::instrument(skip_all, fields(broker = %target::redacted(url)))]
    pub async fn publish(
        &self,
        url: &str,
        headers: &[(String, String)],
        body: &[u8],
        timeout: Duration,
    ) -> Result<Published, BrokerError> {
        let target = Target::parse(url).map_err(BrokerError::InvalidUrl)?;
        let message = Message { headers, body };
        message.check_headers()?;
        let attempt = async {
            match &target {
                Target::Nats(to) => nats::publish(&self.inner.nats, to, &message, timeout).await,
                Target::Amqp(to) => {
                    rabbitmq::publish(&self.inner.amqp, to, &message, timeout).await
                }
                Target::Redis(to) => {
                    redis_streams::publish(&self.inner.redis, to, &message, timeout).await
                }
            }
        };
        match tokio::time::timeout(timeout, attempt).await {
            Ok(outcome) => outcome,
            Err(_) => Err(BrokerError::Unavailable(format!(
                "{}: no confirmation within {}",
                target.origin_for_display(),
                humantime::format_duration(timeout)
            ))),
        }
    }
}

/// One delivery, as the publishers see it.
struct Message<'a> {
    headers: &'a [(String, String)],
    body: &'a [u8],
}

impl Message<'_> {
    /// The first header named `name` (ASCII case-insensitive).
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    fn idempotency_key(&self) -> Option<&str> {
        self.header(IDEMPOTENCY_KEY).filter(|key| !key.is_empty())
    }

    /// Headers that every broker can carry: a name of visible ASCII without `:` (at most
    /// 255 bytes, AMQP's limit), a value without CR or LF (NATS' header block is text).
    /// HTTP headers from the delivery path always are; anything else is refused rather
    /// than sent mangled.
    fn check_headers(&self) -> Result<(), BrokerError> {
        for (name, value) in self.headers {
            if name.is_empty()
                || name.len() > 255
                || !name.bytes().all(|b| b.is_ascii_graphic() && b != b':')
            {
                return Err(BrokerError::Refused(format!(
                    "header name {name:?} is not a valid header name"
                )));
            }
            if value.bytes().any(|b| b == b'\r' || b == b'\n') {
                return Err(BrokerError::Refused(format!(
                    "header {name}: the value holds a line break"
                )));
            }
        }
        Ok(())
    }
}

/// Connections by origin, each behind its own async lock so concurrent first publishes
/// open one connection, not one each. The lock is held only to connect or to clone the
/// handle.
struct Pool<C> {
    slots: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<C>>>>>,
}

impl<C> Default for Pool<C> {
    fn default() -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
        }
    }
}

impl<C: Clone> Pool<C> {
    fn slot(&self, key: &str) -> Arc<tokio::sync::Mutex<Option<C>>> {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.entry(key.to_owned()).or_default().clone()
    }

    /// The cached connection for `key` while `healthy` says it is, else a new one from
    /// `connect` (cached when it succeeds).
    async fn get<F, Fut>(
        &self,
        key: &str,
        healthy: impl Fn(&C) -> bool,
        connect: F,
    ) -> Result<C, BrokerError>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<C, BrokerError>>,
    {
        let slot = self.slot(key);
        let mut cached = slot.lock().await;
        if let Some(conn) = cached.as_ref().filter(|conn| healthy(conn)) {
            return Ok(conn.clone());
        }
        *cached = None;
        let conn = connect().await?;
        *cached = Some(conn.clone());
        Ok(conn)
    }

    /// Drop the cached connection for `key` (it failed): the next publish reconnects.
    async fn forget(&self, key: &str) {
        let slot = self.slot(key);
        *slot.lock().await = None;
    }
}
