//! Redis Streams: one atomic script that adds the entry once per `Idempotency-Key` (the
//! module docs give the commands).

use std::sync::LazyLock;
use std::time::Duration;

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{ConnectionAddr, ErrorKind, IntoConnectionInfo, RedisError, Script};

use super::target::RedisTarget;
use super::{BACKSTOP, BrokerError, Message, Pool, Published, REDIS_DEDUPE_TTL};

/// KEYS[1] the stream, KEYS[2] (absent without a key) the marker; ARGV[1] the marker's
/// TTL in seconds, ARGV[2] MAXLEN (0: none), ARGV[3..] the entry's field/value pairs.
/// Returns {1, new id} or {0, the earlier id}. The marker is written after the XADD, so an
/// XADD that fails (a key that is not a stream) leaves no marker behind.
const ADD_ONCE: &str = r"
local marker = KEYS[2]
if marker then
  local earlier = redis.call('GET', marker)
  if earlier then return {0, earlier} end
end
local id
local maxlen = tonumber(ARGV[2])
if maxlen > 0 then
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', maxlen, '*', unpack(ARGV, 3))
else
  id = redis.call('XADD', KEYS[1], '*', unpack(ARGV, 3))
end
if marker then
  redis.call('SET', marker, id, 'EX', ARGV[1])
end
return {1, id}
";

/// Loaded once per server (EVALSHA, with EVAL when the server does not know it yet).
static SCRIPT: LazyLock<Script> = LazyLock::new(|| Script::new(ADD_ONCE));

/// A connection manager: it reconnects by itself after a failure.
#[derive(Clone)]
pub(super) struct Conn {
    manager: ConnectionManager,
}

/// The key that remembers which entry a delivery's `Idempotency-Key` became. The `{…}`
/// hash tag puts it in the stream's cluster slot, as one script's keys must be.
pub(super) fn marker_key(stream: &str, key: &str) -> String {
    format!("switchyard:idem:{{{stream}}}:{key}")
}

pub(super) async fn publish(
    pool: &Pool<Conn>,
    to: &RedisTarget,
    message: &Message<'_>,
    timeout: Duration,
) -> Result<Published, BrokerError> {
    let key = to.key();
    let mut conn = pool
        .get(&key, |_| true, || connect(to, timeout))
        .await?
        .manager;

    let mut invocation = SCRIPT.key(&to.stream);
    let idempotency_key = message.idempotency_key();
    if let Some(id) = idempotency_key {
        invocation.key(marker_key(&to.stream, id));
    }
    invocation
        .arg(REDIS_DEDUPE_TTL.as_secs())
        .arg(to.maxlen.unwrap_or(0));
    if let Some(id) = idempotency_key {
        invocation.arg("idempotency_key").arg(id);
    }
    invocation.arg("body").arg(message.body);
    for (name, value) in message.headers {
        invocation
            .arg(format!("header:{}", name.to_ascii_lowercase()))
            .arg(value.as_str());
    }
    let (added, id): (i64, String) = invocation
        .invoke_async(&mut conn)
        .await
        .map_err(|err| classify(to, &err))?;
    let detail = format!("redis stream {} id {id}", to.stream);
    Ok(if added == 1 {
        Published {
            detail,
            duplicate: false,
        }
    } else {
        Published {
            detail: format!("duplicate of {detail}"),
            duplicate: true,
        }
    })
}

async fn connect(to: &RedisTarget, timeout: Duration) -> Result<Conn, BrokerError> {
    let address = if to.server.tls {
        ConnectionAddr::TcpTls {
            host: to.server.host.clone(),
            port: to.server.port,
            insecure: false,
            tls_params: None,
        }
    } else {
        ConnectionAddr::Tcp(to.server.host.clone(), to.server.port)
    };
    let invalid = |err: RedisError| BrokerError::InvalidUrl(format!("{}: {err}", to.display()));
    let info = address.into_connection_info().map_err(invalid)?;
    let mut settings = info.redis_settings().clone().set_db(to.db);
    if let Some(user) = &to.server.user {
        settings = settings.set_username(user);
    }
    if let Some(password) = &to.server.password {
        settings = settings.set_password(password);
    }
    let client = redis::Client::open(info.set_redis_settings(settings)).map_err(invalid)?;
    let config = ConnectionManagerConfig::new()
        .set_connection_timeout(Some(timeout))
        .set_response_timeout(Some(timeout.max(BACKSTOP)))
        // Reconnects are retried by the next delivery attempt, not inside this one.
        .set_number_of_retries(1);
    let manager = ConnectionManager::new_with_config(client, config)
        .await
        .map_err(|err| classify(to, &err))?;
    Ok(Conn { manager })
}

/// Permanent when the server refused (credentials, ACL, a key that is not a stream),
/// transient for the rest (I/O, timeouts, OOM, LOADING, READONLY, BUSY…).
fn classify(to: &RedisTarget, err: &RedisError) -> BrokerError {
    let text = format!("{} stream {}: {err}", to.display(), to.stream);
    let said = err.to_string();
    let refused = err.kind() == ErrorKind::AuthenticationFailed
        || matches!(err.code(), Some("WRONGTYPE" | "NOPERM" | "WRONGPASS"))
        || said.contains("WRONGTYPE")
        || said.contains("NOPERM");
    if refused {
        BrokerError::Refused(text)
    } else {
        BrokerError::Unavailable(text)
    }
}
