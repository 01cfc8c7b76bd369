//! Queue destinations end to end (issue 17): the real binary delivers every event through
//! the `router` connector to a core NATS subject, a JetStream stream, a RabbitMQ queue and a
//! Redis stream (the servers this machine runs: 127.0.0.1:4222, :5672 and :6379), is killed
//! with `kill -9` while it does, and restarts. Every acknowledged event reaches each queue,
//! a delivery counts only once its broker confirmed it, and each queue holds each event once
//! per `Idempotency-Key`: JetStream (`Nats-Msg-Id`) and Redis (the host's marker) keep one
//! message per key themselves; core NATS and RabbitMQ may carry a re-sent copy, always with
//! the same key and body, for the consumer to drop.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt as _;
use serde_json::Value;
use switchyard_tests::*;

const SECRET: &str = "whsec_cm91dGVyLXRlc3Qtc2VjcmV0LTI0Ynl0ZXM=";
const SENDERS: usize = 4;
const PER_SENDER: usize = 40;

/// Messages one consumer got: (Idempotency-Key, body), in arrival order.
type Got = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// A Redis stream entry as `XRANGE` answers it: its id, and its fields and values.
type Entry = (String, Vec<(String, Vec<u8>)>);

/// Every key of `got` once, and how many copies beyond one it holds; panics when two
/// copies of a key differ (a consumer could not drop one of them safely).
fn once_per_key(queue: &str, got: &[(String, Vec<u8>)]) -> (HashSet<String>, usize) {
    let mut bodies: HashMap<&str, &[u8]> = HashMap::new();
    for (key, body) in got {
        if let Some(earlier) = bodies.insert(key, body) {
            assert_eq!(earlier, &body[..], "{queue}: two copies of {key} differ");
        }
    }
    (
        bodies.keys().map(|k| k.to_string()).collect(),
        got.len() - bodies.len(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_destinations_get_every_acknowledged_event_once_per_key_across_kill_9() {
    let unique = ulid::Ulid::new().to_string().to_lowercase();

    // Core NATS: a subscriber from the start.
    let nats = async_nats::connect("nats://127.0.0.1:4222")
        .await
        .expect("NATS at 127.0.0.1:4222");
    let core_subject = format!("switchyard-test.{unique}.core");
    let mut subscriber = nats.subscribe(core_subject.clone()).await.unwrap();
    nats.flush().await.unwrap();
    let core: Got = Arc::default();
    let collect = {
        let core = core.clone();
        tokio::spawn(async move {
            while let Some(message) = subscriber.next().await {
                let key = message
                    .headers
                    .as_ref()
                    .and_then(|h| h.get("Idempotency-Key"))
                    .map(|v| v.as_str().to_owned())
                    .expect("an Idempotency-Key header");
                core.lock().unwrap().push((key, message.payload.to_vec()));
            }
        })
    };
    // JetStream: a stream that takes the subject.
    let jetstream = async_nats::jetstream::new(nats.clone());
    let stream_name = format!("SWITCHYARD_TEST_{}", unique.to_uppercase());
    let js_subject = format!("switchyard-test.{unique}.js");
    let mut stream = jetstream
        .create_stream(async_nats::jetstream::stream::Config {
            name: stream_name.clone(),
            subjects: vec![js_subject.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    // RabbitMQ: a durable queue, through the default exchange.
    let amqp = lapin::Connection::connect(
        "amqp://guest:guest@127.0.0.1:5672/%2f",
        lapin::ConnectionProperties::default(),
    )
    .await
    .expect("RabbitMQ at 127.0.0.1:5672");
    let channel = amqp.create_channel().await.unwrap();
    let queue = format!("switchyard-test-{unique}");
    channel
        .queue_declare(
            queue.as_str().into(),
            lapin::options::QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            lapin::types::FieldTable::default(),
        )
        .await
        .unwrap();
    // Redis: a stream key of our own.
    let redis_stream = format!("switchyard-test:{unique}");
    let mut redis = redis::Client::open("redis://127.0.0.1:6379/")
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("Redis at 127.0.0.1:6379");

    let destinations = [
        ("core", format!("nats://127.0.0.1:4222/{core_subject}")),
        ("js", format!("nats://127.0.0.1:4222/{js_subject}")),
        (
            "rabbit",
            format!("amqp://guest:guest@127.0.0.1:5672/%2f?routing_key={queue}"),
        ),
        ("redis", format!("redis://127.0.0.1:6379/{redis_stream}")),
    ];
    let dirs = Dirs::new(&["router.wasm"]);
    let mut config = dirs.base_config();
    for (id, url) in &destinations {
        config.push_str(&format!(
            "\n[[destination]]\nid = \"{id}\"\nurl = \"{url}\"\n"
        ));
    }
    let names: Vec<String> = destinations
        .iter()
        .map(|(id, _)| format!("\"destination:{id}\""))
        .collect();
    config.push_str(&format!(
        r#"
[[connector]]
id = "router"
plugin = "router.wasm"
secret = "{SECRET}"
allowed_hosts = [{names}]
[connector.retry]
initial_backoff = "50ms"
max_backoff = "500ms"
max_attempts = 1000
[[connector.settings.routes]]
name = "all"
to = [{names}]
"#,
        names = names.join(", ")
    ));
    let config_path = dirs.root.path().join("switchyard.toml");
    std::fs::write(&config_path, config).unwrap();

    // Senders at once; the host is killed once a good share is acknowledged.
    let host = ChildHost::start(&config_path);
    let url = host.url("/hooks/router");
    let acknowledged = Arc::new(Mutex::new(Vec::<String>::new()));
    let acked = Arc::new(AtomicUsize::new(0));
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let (client, url) = (client.clone(), url.clone());
        let (acknowledged, acked) = (acknowledged.clone(), acked.clone());
        senders.push(tokio::spawn(async move {
            let mut refused = 0;
            for n in 0..PER_SENDER {
                let body = format!(r#"{{"type":"order.created","data":{{"n":"{sender}-{n}"}}}}"#);
                let msg_id = format!("msg_{}", ulid::Ulid::new());
                let mut request = client.post(&url).body(body.clone());
                for (k, v) in standard_webhooks_headers(SECRET, body.as_bytes(), &msg_id) {
                    request = request.header(k, v);
                }
                match request.send().await {
                    Ok(response) if response.status() == 200 => {
                        let answer: Value = response.json().await.unwrap();
                        let id = answer["id"].as_str().unwrap().to_owned();
                        acknowledged.lock().unwrap().push(id);
                        acked.fetch_add(1, Ordering::SeqCst);
                    }
                    // Cut off by the kill: the sender would retry; not ours.
                    _ => refused += 1,
                }
            }
            refused
        }));
    }
    let target = SENDERS * PER_SENDER / 2;
    let counter = acked.clone();
    wait_for("acknowledged events", Duration::from_secs(60), move || {
        let counter = counter.clone();
        async move { counter.load(Ordering::SeqCst) >= target }
    })
    .await;
    host.kill_9();
    let mut refused = 0;
    for sender in senders {
        refused += sender.await.unwrap();
    }
    assert!(refused > 0, "the kill happened while senders were sending");
    let events = acknowledged.lock().unwrap().clone();
    let want = |index: usize| -> HashSet<String> {
        events.iter().map(|id| format!("{id}-{index}")).collect()
    };

    // Restarted on the same data: every acknowledged event reaches every queue.
    let host = ChildHost::start(&config_path);
    let rabbit: Got = Arc::default();
    let read_all = || async {
        // RabbitMQ: take what is queued.
        while let Some(message) = channel
            .basic_get(
                queue.as_str().into(),
                lapin::options::BasicGetOptions { no_ack: true },
            )
            .await
            .unwrap()
        {
            let delivery = message.delivery;
            let key = delivery
                .properties
                .message_id()
                .as_ref()
                .expect("message_id")
                .to_string();
            rabbit.lock().unwrap().push((key, delivery.data));
        }
    };
    let mut js: Vec<(String, Vec<u8>)> = Vec::new();
    let mut redis_got: Vec<(String, Vec<u8>)>;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    loop {
        read_all().await;
        let messages = stream.info().await.unwrap().state.messages;
        js.clear();
        for seq in 1..=messages {
            let message = stream.get_raw_message(seq).await.unwrap();
            let key = message
                .headers
                .get("Idempotency-Key")
                .expect("an Idempotency-Key header")
                .as_str()
                .to_owned();
            js.push((key, message.payload.to_vec()));
        }
        let entries: Vec<Entry> = redis::cmd("XRANGE")
            .arg(&redis_stream)
            .arg("-")
            .arg("+")
            .query_async(&mut redis)
            .await
            .unwrap();
        redis_got = entries
            .into_iter()
            .map(|(_, fields)| {
                let field = |name: &str| {
                    fields
                        .iter()
                        .find(|(k, _)| k == name)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_else(|| panic!("field {name}"))
                };
                (
                    String::from_utf8(field("idempotency_key")).unwrap(),
                    field("body"),
                )
            })
            .collect();
        let complete = [
            (0, core.lock().unwrap().clone()),
            (1, js.clone()),
            (2, rabbit.lock().unwrap().clone()),
            (3, redis_got.clone()),
        ]
        .iter()
        .all(|(index, got)| {
            let keys: HashSet<String> = got.iter().map(|(k, _)| k.clone()).collect();
            want(*index).is_subset(&keys)
        });
        if complete || tokio::time::Instant::now() >= deadline {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    let mut report = Vec::new();
    for (index, queue_name, got) in [
        (0, "core NATS", core.lock().unwrap().clone()),
        (1, "JetStream", js.clone()),
        (2, "RabbitMQ", rabbit.lock().unwrap().clone()),
        (3, "Redis Streams", redis_got.clone()),
    ] {
        let (keys, copies) = once_per_key(queue_name, &got);
        let wanted = want(index);
        let missing: Vec<&String> = wanted.difference(&keys).collect();
        assert!(
            missing.is_empty(),
            "{queue_name}: {} of {} acknowledged events never arrived, e.g. {:?}\nhost log:\n{}",
            missing.len(),
            events.len(),
            missing.iter().take(3).collect::<Vec<_>>(),
            host.log.lock().unwrap()
        );
        report.push(format!("{queue_name} {} (+{copies} copies)", keys.len()));
        if index == 1 || index == 3 {
            // The broker itself keeps one message per key.
            assert_eq!(copies, 0, "{queue_name} holds a key twice");
        }
    }
    eprintln!(
        "queues after kill -9: {} acknowledged, {refused} cut off; {}",
        events.len(),
        report.join(", ")
    );

    host.kill_9();
    collect.abort();
    jetstream.delete_stream(&stream_name).await.unwrap();
    channel
        .queue_delete(queue.as_str().into(), Default::default())
        .await
        .unwrap();
    let markers: Vec<String> = redis::cmd("KEYS")
        .arg(format!("switchyard:idem:{redis_stream}:*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    let _: i64 = redis::cmd("DEL")
        .arg(&redis_stream)
        .arg(&markers)
        .query_async(&mut redis)
        .await
        .unwrap();
}
