//! The URL rules, and each publisher against a real broker on this machine: NATS with
//! JetStream on 127.0.0.1:4222, RabbitMQ on 127.0.0.1:5672 (guest/guest), Redis on
//! 127.0.0.1:6379 (`SWITCHYARD_TEST_NATS`, `SWITCHYARD_TEST_AMQP`, `SWITCHYARD_TEST_REDIS`
//! name others, as `host:port`). Every test uses names of its own (a random suffix) and
//! removes what it created.

use std::time::{Duration, Instant};

use super::target::{Target, redacted};
use super::*;

const TIMEOUT: Duration = Duration::from_secs(10);

fn server(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

fn nats_addr() -> String {
    server("SWITCHYARD_TEST_NATS", "127.0.0.1:4222")
}

fn amqp_addr() -> String {
    server("SWITCHYARD_TEST_AMQP", "127.0.0.1:5672")
}

fn redis_addr() -> String {
    server("SWITCHYARD_TEST_REDIS", "127.0.0.1:6379")
}

/// A fresh lowercase suffix, so parallel and repeated runs never share a name.
fn unique() -> String {
    format!("{:016x}", rand::random::<u64>())
}

fn headers(key: &str) -> Vec<(String, String)> {
    vec![
        ("Idempotency-Key".into(), key.into()),
        ("Content-Type".into(), "application/json".into()),
        ("webhook-id".into(), format!("msg_{key}")),
        ("webhook-signature".into(), "v1,c2lnbmF0dXJl".into()),
    ]
}

fn invalid(url: &str) -> String {
    match check_url(url) {
        Err(message) => message,
        Ok(()) => panic!("{url} should be refused"),
    }
}

// ---- URLs -------------------------------------------------------------------------------

#[test]
fn handles_broker_schemes_only() {
    for url in [
        "nats://h/s",
        "amqp://h/?routing_key=q",
        "AMQPS://h",
        "redis://h/s",
        "rediss://h/s",
    ] {
        assert!(Brokers::handles(url), "{url}");
    }
    for url in [
        "http://h/x",
        "https://h/nats",
        "destination:billing",
        "natsx://h/s",
        "",
    ] {
        assert!(!Brokers::handles(url), "{url}");
    }
}

#[test]
fn nats_urls() {
    let Ok(Target::Nats(to)) =
        Target::parse("nats://app:s%40cret@broker.local:4223/orders.created")
    else {
        panic!("not a NATS target");
    };
    assert_eq!(to.subject, "orders.created");
    assert_eq!(to.server.host, "broker.local");
    assert_eq!(to.server.port, 4223);
    assert_eq!(to.server.user.as_deref(), Some("app"));
    assert_eq!(to.server.password.as_deref(), Some("s@cret"));
    let Ok(Target::Nats(to)) = Target::parse("nats://127.0.0.1/a") else {
        panic!("not a NATS target");
    };
    assert_eq!(to.server.port, 4222);

    assert!(invalid("nats://127.0.0.1:4222").contains("no subject"));
    assert!(invalid("nats://127.0.0.1:4222/").contains("no subject"));
    assert!(invalid("nats://h/orders.*").contains("wildcard"));
    assert!(invalid("nats://h/orders.>").contains("wildcard"));
    assert!(invalid("nats://h/orders..created").contains("empty token"));
    assert!(invalid("nats://h/orders.").contains("empty token"));
    assert!(invalid("nats://h/a%20b").contains("whitespace"));
    assert!(invalid("nats://h/a?x=1").contains("unknown query parameter `x`"));
    assert!(invalid("nats:///subject").contains("no host"));
}

#[test]
fn amqp_urls() {
    let Ok(Target::Amqp(to)) = Target::parse("amqp://127.0.0.1/?routing_key=orders") else {
        panic!("not an AMQP target");
    };
    assert_eq!(
        (
            to.vhost.as_str(),
            to.exchange.as_str(),
            to.routing_key.as_str()
        ),
        ("/", "", "orders")
    );
    assert_eq!(to.server.port, 5672);
    assert_eq!(to.server.user.as_deref(), Some("guest"));

    let Ok(Target::Amqp(to)) =
        Target::parse("amqps://app:pw@mq.example:5673/billing?exchange=events&routing_key=a.b")
    else {
        panic!("not an AMQP target");
    };
    assert_eq!(
        (
            to.vhost.as_str(),
            to.exchange.as_str(),
            to.routing_key.as_str()
        ),
        ("billing", "events", "a.b")
    );
    assert!(to.server.tls);
    assert_eq!(to.server.port, 5673);

    let Ok(Target::Amqp(to)) = Target::parse("amqp://h/%2f?exchange=fanout") else {
        panic!("not an AMQP target");
    };
    assert_eq!((to.vhost.as_str(), to.routing_key.as_str()), ("/", ""));
    let Ok(Target::Amqp(to)) = Target::parse("amqps://h?exchange=x") else {
        panic!("not an AMQP target");
    };
    assert_eq!((to.vhost.as_str(), to.server.port), ("/", 5671));

    assert!(invalid("amqp://127.0.0.1:5672/").contains("no routing_key"));
    assert!(invalid("amqp://h/?queue=orders").contains("unknown query parameter `queue`"));
    assert!(invalid("amqp://h/?routing_key=a&routing_key=b").contains("given twice"));
    assert!(invalid("amqp://h/a/b?routing_key=q").contains("vhost `a/b`"));
    assert!(invalid(&format!("amqp://h/?routing_key={}", "k".repeat(256))).contains("255"));
}

#[test]
fn redis_urls() {
    let Ok(Target::Redis(to)) = Target::parse("redis://127.0.0.1/orders") else {
        panic!("not a Redis target");
    };
    assert_eq!((to.stream.as_str(), to.db, to.maxlen), ("orders", 0, None));
    assert_eq!(to.server.port, 6379);
    let Ok(Target::Redis(to)) =
        Target::parse("rediss://:pw@cache.example:6380/app%3Aevents?db=2&maxlen=1000")
    else {
        panic!("not a Redis target");
    };
    assert_eq!(
        (to.stream.as_str(), to.db, to.maxlen),
        ("app:events", 2, Some(1000))
    );
    assert!(to.server.tls);
    assert_eq!(to.server.user, None);
    assert_eq!(to.server.password.as_deref(), Some("pw"));

    assert!(invalid("redis://127.0.0.1:6379").contains("no stream"));
    assert!(invalid("redis://127.0.0.1:6379/0").contains("?db=0"));
    assert!(invalid("redis://h/s?db=x").contains("db `x`"));
    assert!(invalid("redis://h/s?maxlen=0").contains("maxlen `0`"));
    assert!(invalid("redis://h/s?maxlen=-5").contains("maxlen `-5`"));
    assert!(invalid("redis://h/s?ttl=5").contains("unknown query parameter `ttl`"));
    assert!(invalid("redis://h/s%ZZ").contains("two hex digits"));
}

#[test]
fn bad_urls_name_the_problem_and_hide_passwords() {
    assert!(invalid("http://h/x").contains("not a broker"));
    assert!(invalid("not a url").contains("not a url"));
    assert!(invalid("nats://h/s#frag").contains("fragment"));
    let message = invalid("redis://user:hunter2@h:6379/0");
    assert!(!message.contains("hunter2"), "{message}");
    assert!(message.contains("***"), "{message}");
    assert_eq!(
        redacted("amqp://u:hunter2@h/?routing_key=q"),
        "amqp://u:***@h/?routing_key=q"
    );
    assert_eq!(redacted("nats://h:4222/s"), "nats://h:4222/s");
}

#[tokio::test]
async fn bad_urls_are_invalid_without_a_network() {
    let brokers = Brokers::default();
    for url in [
        "nats://127.0.0.1:4222/a.*",
        "amqp://127.0.0.1:5672/",
        "redis://127.0.0.1:6379/",
        "http://127.0.0.1/x",
    ] {
        let err = brokers
            .publish(url, &headers("k"), b"{}", TIMEOUT)
            .await
            .unwrap_err();
        assert!(matches!(err, BrokerError::InvalidUrl(_)), "{url}: {err:?}");
        assert!(err.is_permanent());
    }
}

#[test]
fn headers_that_cannot_travel_are_refused() {
    let bad = [("X-Bad".to_owned(), "a\r\nInjected: 1".to_owned())];
    let message = Message {
        headers: &bad,
        body: b"",
    };
    assert!(matches!(
        message.check_headers(),
        Err(BrokerError::Refused(_))
    ));
    let bad = [("Bad Name".to_owned(), "v".to_owned())];
    let message = Message {
        headers: &bad,
        body: b"",
    };
    assert!(message.check_headers().is_err());
}

// ---- unreachable and silent brokers ------------------------------------------------------

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    port
}

#[tokio::test]
async fn an_unreachable_broker_is_unavailable_within_the_timeout() {
    let port = closed_port();
    let brokers = Brokers::default();
    let timeout = Duration::from_secs(3);
    for url in [
        format!("nats://127.0.0.1:{port}/orders"),
        format!("amqp://127.0.0.1:{port}/?routing_key=orders"),
        format!("redis://127.0.0.1:{port}/orders"),
    ] {
        let start = Instant::now();
        let err = brokers
            .publish(&url, &headers("k"), b"{}", timeout)
            .await
            .unwrap_err();
        assert!(
            start.elapsed() < timeout + Duration::from_millis(500),
            "{url}: {:?}",
            start.elapsed()
        );
        assert!(matches!(err, BrokerError::Unavailable(_)), "{url}: {err:?}");
        assert!(!err.is_permanent());
    }
}

#[tokio::test]
async fn a_broker_that_never_answers_is_unavailable_at_the_timeout() {
    // Accepts connections and says nothing (no INFO, no AMQP handshake, no RESP reply).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let brokers = Brokers::default();
    let timeout = Duration::from_millis(700);
    for url in [
        format!("nats://127.0.0.1:{port}/orders"),
        format!("amqp://127.0.0.1:{port}/?routing_key=orders"),
        format!("redis://127.0.0.1:{port}/orders"),
    ] {
        let start = Instant::now();
        let err = brokers
            .publish(&url, &headers("k"), b"{}", timeout)
            .await
            .unwrap_err();
        assert!(
            start.elapsed() < timeout + Duration::from_millis(500),
            "{url}: {:?}",
            start.elapsed()
        );
        assert!(matches!(err, BrokerError::Unavailable(_)), "{url}: {err:?}");
    }
    hold.abort();
}

// ---- NATS -------------------------------------------------------------------------------

async fn nats_client() -> async_nats::Client {
    async_nats::connect(format!("nats://{}", nats_addr()))
        .await
        .expect("the test NATS server (127.0.0.1:4222, or SWITCHYARD_TEST_NATS)")
}

#[tokio::test]
async fn nats_core_subscriber_receives_body_and_headers() {
    use futures::StreamExt;

    let client = nats_client().await;
    let subject = format!("switchyard-broker-test.core.{}", unique());
    let mut subscriber = client.subscribe(subject.clone()).await.unwrap();
    client.flush().await.unwrap();

    let brokers = Brokers::default();
    let url = format!("nats://{}/{subject}", nats_addr());
    let published = brokers
        .publish(&url, &headers("key-core-1"), br#"{"id":1}"#, TIMEOUT)
        .await
        .unwrap();
    assert!(published.detail.starts_with("core nats"), "{published:?}");
    assert!(!published.duplicate);

    let message = tokio::time::timeout(TIMEOUT, subscriber.next())
        .await
        .expect("the message within the timeout")
        .expect("an open subscription");
    assert_eq!(&message.payload[..], br#"{"id":1}"#);
    let received = message.headers.expect("headers");
    assert_eq!(
        received.get("Idempotency-Key").map(|v| v.as_str()),
        Some("key-core-1")
    );
    assert_eq!(
        received
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.as_str()),
        Some("key-core-1")
    );
    assert_eq!(
        received.get("webhook-signature").map(|v| v.as_str()),
        Some("v1,c2lnbmF0dXJl")
    );
    assert_eq!(
        received.get("Content-Type").map(|v| v.as_str()),
        Some("application/json")
    );
    subscriber.unsubscribe().await.unwrap();
}

#[tokio::test]
async fn jetstream_acks_and_dedupes_on_the_idempotency_key() {
    let client = nats_client().await;
    let jetstream = async_nats::jetstream::new(client);
    let suffix = unique();
    let name = format!("SWITCHYARD_BROKER_TEST_{}", suffix.to_uppercase());
    let mut stream = jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![format!("switchyard-broker-test.js.{suffix}.>")],
            ..Default::default()
        })
        .await
        .unwrap();

    let brokers = Brokers::default();
    let url = format!(
        "nats://{}/switchyard-broker-test.js.{suffix}.orders",
        nats_addr()
    );
    let first = brokers
        .publish(&url, &headers("key-js-1"), b"one", TIMEOUT)
        .await;
    let second = brokers
        .publish(&url, &headers("key-js-1"), b"one", TIMEOUT)
        .await;
    let other = brokers
        .publish(&url, &headers("key-js-2"), b"two", TIMEOUT)
        .await;
    let messages = stream.info().await.unwrap().state.messages;
    let stored = stream.get_raw_message(1).await;
    jetstream.delete_stream(&name).await.unwrap();

    let first = first.unwrap();
    assert_eq!(first.detail, format!("jetstream stream {name} seq 1"));
    assert!(!first.duplicate);
    let second = second.unwrap();
    assert!(second.duplicate, "{second:?}");
    assert_eq!(
        second.detail,
        format!("duplicate of jetstream stream {name} seq 1")
    );
    assert_eq!(
        other.unwrap().detail,
        format!("jetstream stream {name} seq 2")
    );
    assert_eq!(messages, 2, "one message per key");
    let stored = stored.unwrap();
    assert_eq!(&stored.payload[..], b"one");
    let stored_headers = stored.headers;
    assert_eq!(
        stored_headers
            .get(async_nats::header::NATS_MESSAGE_ID)
            .map(|v| v.as_str()),
        Some("key-js-1")
    );
    assert_eq!(
        stored_headers.get("webhook-id").map(|v| v.as_str()),
        Some("msg_key-js-1")
    );
}

#[tokio::test]
async fn a_stream_created_later_takes_the_next_message_and_a_deleted_one_is_not_bypassed() {
    let client = nats_client().await;
    let jetstream = async_nats::jetstream::new(client);
    let suffix = unique();
    let subject = format!("switchyard-broker-test.later.{suffix}");
    let url = format!("nats://{}/{subject}", nats_addr());
    let brokers = Brokers::default();

    let before = brokers.publish(&url, &headers("k1"), b"1", TIMEOUT).await;
    let name = format!("SWITCHYARD_BROKER_TEST_{}", suffix.to_uppercase());
    jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: name.clone(),
            subjects: vec![subject.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    let during = brokers.publish(&url, &headers("k2"), b"2", TIMEOUT).await;
    jetstream.delete_stream(&name).await.unwrap();
    // The remembered stream is gone: this one is retried, not sent past it…
    let gone = brokers.publish(&url, &headers("k3"), b"3", TIMEOUT).await;
    // …and the next try finds no stream, so core NATS takes it.
    let after = brokers.publish(&url, &headers("k3"), b"3", TIMEOUT).await;

    assert!(before.unwrap().detail.starts_with("core nats"));
    assert_eq!(
        during.unwrap().detail,
        format!("jetstream stream {name} seq 1")
    );
    assert!(matches!(gone, Err(BrokerError::Unavailable(_))), "{gone:?}");
    assert!(after.unwrap().detail.starts_with("core nats"));
}

// ---- RabbitMQ ---------------------------------------------------------------------------

async fn amqp_channel() -> (lapin::Connection, lapin::Channel) {
    let connection = lapin::Connection::connect(
        &format!("amqp://guest:guest@{}/%2f", amqp_addr()),
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("the test RabbitMQ (127.0.0.1:5672, guest/guest, or SWITCHYARD_TEST_AMQP)");
    let channel = connection.create_channel().await.unwrap();
    (connection, channel)
}

#[tokio::test]
async fn rabbitmq_publishes_a_persistent_confirmed_message() {
    use lapin::options::{BasicGetOptions, QueueDeclareOptions, QueueDeleteOptions};
    use lapin::types::{AMQPValue, FieldTable};

    let (_connection, channel) = amqp_channel().await;
    let queue = format!("switchyard-broker-test-{}", unique());
    channel
        .queue_declare(
            queue.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            FieldTable::default(),
        )
        .await
        .unwrap();

    let brokers = Brokers::default();
    let url = format!("amqp://guest:guest@{}/%2f?routing_key={queue}", amqp_addr());
    let published = brokers
        .publish(&url, &headers("key-amqp-1"), br#"{"id":7}"#, TIMEOUT)
        .await;
    let got = channel
        .basic_get(queue.as_str().into(), BasicGetOptions { no_ack: true })
        .await
        .unwrap();
    channel
        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
        .await
        .unwrap();

    let published = published.unwrap();
    assert!(published.detail.contains("confirmed"), "{published:?}");
    let delivery = got.expect("the message in the queue").delivery;
    assert_eq!(delivery.data, br#"{"id":7}"#);
    let properties = &delivery.properties;
    assert_eq!(*properties.delivery_mode(), Some(2));
    assert_eq!(
        properties.message_id().as_ref().map(|id| id.as_str()),
        Some("key-amqp-1")
    );
    assert_eq!(
        properties.content_type().as_ref().map(|ct| ct.as_str()),
        Some("application/json")
    );
    let table = properties.headers().as_ref().expect("headers");
    let header = |name: &str| match table.inner().get(name) {
        Some(AMQPValue::LongString(value)) => Some(value.to_string()),
        _ => None,
    };
    assert_eq!(header("Idempotency-Key").as_deref(), Some("key-amqp-1"));
    assert_eq!(header("webhook-id").as_deref(), Some("msg_key-amqp-1"));
    assert_eq!(
        header("webhook-signature").as_deref(),
        Some("v1,c2lnbmF0dXJl")
    );
}

#[tokio::test]
async fn rabbitmq_refuses_a_missing_exchange_and_an_unroutable_message() {
    let brokers = Brokers::default();
    let missing = format!(
        "amqp://guest:guest@{}/%2f?exchange=switchyard-broker-test-missing-{}&routing_key=k",
        amqp_addr(),
        unique()
    );
    let err = brokers
        .publish(&missing, &headers("key-amqp-2"), b"x", TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Refused(_)), "{err:?}");
    assert!(
        err.to_string().contains("NOT_FOUND") || err.to_string().contains("404"),
        "{err}"
    );

    // amq.direct exists on every broker; nothing is bound for this key.
    let unroutable = format!(
        "amqp://guest:guest@{}/%2f?exchange=amq.direct&routing_key=switchyard-unbound-{}",
        amqp_addr(),
        unique()
    );
    let err = brokers
        .publish(&unroutable, &headers("key-amqp-3"), b"x", TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("unroutable"), "{err}");

    // The channel the broker closed is not reused: the next publish on the same
    // connection goes through.
    let (_connection, channel) = amqp_channel().await;
    let queue = format!("switchyard-broker-test-{}", unique());
    channel
        .queue_declare(
            queue.as_str().into(),
            lapin::options::QueueDeclareOptions::default(),
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    let url = format!("amqp://guest:guest@{}/%2f?routing_key={queue}", amqp_addr());
    let after = brokers
        .publish(&url, &headers("key-amqp-4"), b"y", TIMEOUT)
        .await;
    channel
        .queue_delete(queue.as_str().into(), Default::default())
        .await
        .unwrap();
    after.unwrap();
}

#[tokio::test]
async fn rabbitmq_refuses_a_missing_vhost() {
    let brokers = Brokers::default();
    let url = format!(
        "amqp://guest:guest@{}/switchyard-no-such-vhost-{}?routing_key=q",
        amqp_addr(),
        unique()
    );
    let err = brokers
        .publish(&url, &headers("k"), b"x", TIMEOUT)
        .await
        .unwrap_err();
    assert!(matches!(err, BrokerError::Refused(_)), "{err:?}");
}

// ---- Redis ------------------------------------------------------------------------------

async fn redis_conn() -> redis::aio::MultiplexedConnection {
    redis::Client::open(format!("redis://{}/", redis_addr()))
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("the test Redis (127.0.0.1:6379, or SWITCHYARD_TEST_REDIS)")
}

async fn delete(conn: &mut redis::aio::MultiplexedConnection, keys: &[String]) {
    let _: i64 = redis::cmd("DEL").arg(keys).query_async(conn).await.unwrap();
}

#[tokio::test]
async fn redis_adds_once_per_key() {
    let mut conn = redis_conn().await;
    let stream = format!("switchyard-broker-test:{}", unique());
    let brokers = Brokers::default();
    let url = format!("redis://{}/{stream}", redis_addr());

    let first = brokers
        .publish(&url, &headers("key-redis-1"), b"\x00binary\xff", TIMEOUT)
        .await;
    let second = brokers
        .publish(&url, &headers("key-redis-1"), b"\x00binary\xff", TIMEOUT)
        .await;
    let len: i64 = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    let entries: Vec<(String, Vec<Vec<u8>>)> = redis::cmd("XRANGE")
        .arg(&stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let marker = redis_streams::marker_key(&stream, "key-redis-1");
    let remembered: Option<String> = redis::cmd("GET")
        .arg(&marker)
        .query_async(&mut conn)
        .await
        .unwrap();
    let ttl: i64 = redis::cmd("TTL")
        .arg(&marker)
        .query_async(&mut conn)
        .await
        .unwrap();
    delete(&mut conn, &[stream.clone(), marker]).await;

    let first = first.unwrap();
    assert!(!first.duplicate);
    let id = first
        .detail
        .strip_prefix(&format!("redis stream {stream} id "))
        .unwrap_or_else(|| panic!("{first:?}"))
        .to_owned();
    let second = second.unwrap();
    assert!(second.duplicate);
    assert_eq!(
        second.detail,
        format!("duplicate of redis stream {stream} id {id}")
    );
    assert_eq!(len, 1);
    assert_eq!(remembered.as_deref(), Some(id.as_str()));
    assert!(ttl > 6 * 24 * 3600 && ttl <= 7 * 24 * 3600, "{ttl}");

    let (entry_id, fields) = &entries[0];
    assert_eq!(entry_id, &id);
    let field = |name: &str| {
        fields
            .chunks(2)
            .find(|pair| pair[0] == name.as_bytes())
            .map(|pair| pair[1].clone())
    };
    assert_eq!(
        field("idempotency_key").as_deref(),
        Some(&b"key-redis-1"[..])
    );
    assert_eq!(field("body").as_deref(), Some(&b"\x00binary\xff"[..]));
    assert_eq!(
        field("header:idempotency-key").as_deref(),
        Some(&b"key-redis-1"[..])
    );
    assert_eq!(
        field("header:webhook-signature").as_deref(),
        Some(&b"v1,c2lnbmF0dXJl"[..])
    );
    assert_eq!(
        field("header:content-type").as_deref(),
        Some(&b"application/json"[..])
    );
}

#[tokio::test]
async fn redis_maxlen_trims_the_stream() {
    let mut conn = redis_conn().await;
    let stream = format!("switchyard-broker-test:{}", unique());
    let brokers = Brokers::default();
    let url = format!("redis://{}/{stream}?maxlen=10", redis_addr());
    // `MAXLEN ~` trims whole nodes (100 entries by default): add enough to fill a few.
    let keys: Vec<String> = (0..350).map(|n| format!("key-trim-{n}")).collect();
    let mut outcomes = Vec::new();
    for key in &keys {
        outcomes.push(brokers.publish(&url, &headers(key), b"x", TIMEOUT).await);
    }
    let len: i64 = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut created: Vec<String> = keys
        .iter()
        .map(|key| redis_streams::marker_key(&stream, key))
        .collect();
    created.push(stream.clone());
    delete(&mut conn, &created).await;

    for outcome in outcomes {
        outcome.unwrap();
    }
    assert!((10..=110).contains(&len), "XLEN {len}");
}

#[tokio::test]
async fn redis_refuses_a_key_that_is_not_a_stream_and_remembers_nothing() {
    let mut conn = redis_conn().await;
    let key = format!("switchyard-broker-test:{}", unique());
    let _: () = redis::cmd("SET")
        .arg(&key)
        .arg("a string")
        .query_async(&mut conn)
        .await
        .unwrap();
    let brokers = Brokers::default();
    let url = format!("redis://{}/{key}", redis_addr());
    let outcome = brokers
        .publish(&url, &headers("key-wrongtype"), b"x", TIMEOUT)
        .await;
    let marker = redis_streams::marker_key(&key, "key-wrongtype");
    let exists: i64 = redis::cmd("EXISTS")
        .arg(&marker)
        .query_async(&mut conn)
        .await
        .unwrap();
    delete(&mut conn, &[key, marker]).await;

    let err = outcome.unwrap_err();
    assert!(matches!(err, BrokerError::Refused(_)), "{err:?}");
    assert!(err.to_string().contains("WRONGTYPE"), "{err}");
    assert_eq!(exists, 0, "a failed add leaves no marker");
}

#[tokio::test]
async fn redis_without_a_key_adds_every_time_and_db_selects_the_database() {
    let mut conn = redis_conn().await;
    let stream = format!("switchyard-broker-test:{}", unique());
    let brokers = Brokers::default();
    let url = format!("redis://{}/{stream}?db=3", redis_addr());
    let plain = [("Content-Type".to_owned(), "text/plain".to_owned())];
    let first = brokers.publish(&url, &plain, b"a", TIMEOUT).await;
    let second = brokers.publish(&url, &plain, b"a", TIMEOUT).await;
    let in_db0: i64 = redis::cmd("EXISTS")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    let _: () = redis::cmd("SELECT")
        .arg(3)
        .query_async(&mut conn)
        .await
        .unwrap();
    let len: i64 = redis::cmd("XLEN")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    delete(&mut conn, std::slice::from_ref(&stream)).await;

    assert!(!first.unwrap().duplicate);
    assert!(!second.unwrap().duplicate);
    assert_eq!((in_db0, len), (0, 2));
}
