//! Micro-benchmarks of the hot path's pieces (`make bench-micro`, i.e.
//! `cargo bench -p switchyard-bench`): signature verification, a connector call on the real
//! `dist/plugins/stripe.wasm` (fresh instance + `handle`, and `dedupe-key` alone), and a
//! dedupe hit in the sled store.
//!
//! `make plugins` must have built `stripe.wasm`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use http::{HeaderMap, HeaderName, HeaderValue};
use switchyard::plugin::bindings::Webhook;
use switchyard::plugin::{AllowedHosts, Grants, HandleOutcome, Limits, Runtime};
use switchyard::secret::Secret;
use switchyard::store::sled::SledStore;
use switchyard::store::{EventRecord, Inserted, NewEvent, StoredRequest};

// The allocator of the `switchyard` binary, so the figures are the ones the host sees.
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;
use switchyard::verify::{self, DEFAULT_TOLERANCE, Scheme, Verifier};

const SECRET: &str = "whsec_bench_only_secret";
const FORWARD_TO: &str = "http://127.0.0.1:9000";

fn event_body(id: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "id": id,
        "object": "event",
        "api_version": "2024-06-20",
        "created": 1_700_000_000,
        "data": { "object": { "id": "in_123", "object": "invoice", "amount_paid": 2000 } },
        "livemode": false,
        "pending_webhooks": 1,
        "request": { "id": null, "idempotency_key": null },
        "type": "invoice.paid",
    }))
    .expect("json")
}

fn signature_verification(c: &mut Criterion) {
    let body = event_body("evt_bench");
    let now = switchyard::time::now_s();
    let mut headers = HeaderMap::new();
    for (name, value) in
        verify::sign(&Scheme::Stripe, &Secret::new(SECRET), &body, now, "").expect("sign")
    {
        headers.insert(
            HeaderName::try_from(name).expect("header name"),
            HeaderValue::try_from(value).expect("header value"),
        );
    }
    let verifier = Verifier::new(Scheme::Stripe, vec![Secret::new(SECRET)], DEFAULT_TOLERANCE);
    let request = verify::Request {
        headers: &headers,
        query: "",
        body: &body,
    };
    verifier
        .verify(&request, now)
        .expect("the signature verifies");
    c.bench_function("verify/stripe", |b| {
        b.iter(|| verifier.verify(black_box(&request), now))
    });
}

/// The real connector, loaded as the host loads it.
struct Loaded {
    runtime: Runtime,
    plugin: switchyard::plugin::Plugin,
    grants: Arc<Grants>,
    webhook: Webhook,
    _dir: tempfile::TempDir,
}

fn load_stripe(rt: &tokio::runtime::Runtime) -> Loaded {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../dist/plugins/stripe.wasm");
    let bytes =
        std::fs::read(path).unwrap_or_else(|err| panic!("{path}: {err}; run `make plugins` first"));
    let dir = tempfile::tempdir().expect("tempdir");
    let storage = SledStore::open(dir.path(), false).expect("sled");
    let grants = Arc::new(Grants {
        connector: "stripe".into(),
        settings: BTreeMap::from([("forward_url".to_string(), format!("{FORWARD_TO}/billing"))]),
        secrets: Vec::new(),
        allowed_hosts: AllowedHosts::new(&[FORWARD_TO]),
        kv: switchyard::store::Kv::new(Arc::new(storage), "stripe"),
        http: reqwest::Client::new(),
        fetch_timeout: Duration::from_secs(15),
    });
    let body = event_body("evt_bench");
    let webhook = Webhook {
        id: ulid::Ulid::new().to_string(),
        connector: "stripe".into(),
        method: "POST".into(),
        path: "/hooks/stripe".into(),
        query: String::new(),
        headers: vec![
            ("content-type".into(), "application/json".into()),
            ("stripe-signature".into(), "t=1,v1=00".into()),
        ],
        body,
        received_at: switchyard::time::now_ms(),
        attempt: 1,
    };
    rt.block_on(async {
        let runtime = Runtime::new(Limits::default(), None).expect("engine");
        let plugin = runtime
            .load(&bytes, grants.clone())
            .await
            .expect("stripe.wasm loads");
        // Check once that the call does what the benchmark claims to measure.
        let HandleOutcome { result, .. } = runtime.handle(&plugin, grants.clone(), &webhook).await;
        let deliveries = result.expect("no trap").expect("no failure");
        assert_eq!(deliveries.len(), 1, "the event is forwarded");
        let key = runtime
            .dedupe_key(&plugin, grants.clone(), &webhook)
            .await
            .expect("dedupe-key");
        assert_eq!(key.as_deref(), Some("evt_bench"));
        Loaded {
            runtime,
            plugin,
            grants,
            webhook,
            _dir: dir,
        }
    })
}

fn connector_calls(c: &mut Criterion) {
    let rt = tokio::runtime::Runtime::new().expect("tokio");
    let loaded = load_stripe(&rt);
    c.bench_function("connector/instantiate+handle", |b| {
        b.to_async(&rt).iter(|| async {
            loaded
                .runtime
                .handle(
                    &loaded.plugin,
                    loaded.grants.clone(),
                    black_box(&loaded.webhook),
                )
                .await
        })
    });
    c.bench_function("connector/dedupe-key (warm)", |b| {
        b.to_async(&rt).iter(|| async {
            loaded
                .runtime
                .dedupe_key(
                    &loaded.plugin,
                    loaded.grants.clone(),
                    black_box(&loaded.webhook),
                )
                .await
        })
    });
}

fn new_event(id: String, key: &str) -> NewEvent {
    let now = switchyard::time::now_ms();
    let mut record = EventRecord::received(id, "stripe".into(), now, "stripe");
    record.dedupe_key = Some(key.into());
    NewEvent {
        record,
        request: StoredRequest {
            method: "POST".into(),
            path: "/hooks/stripe".into(),
            query: String::new(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: event_body(key).into(),
        },
        dedupe: Some((key.to_string(), 7 * 86_400_000)),
    }
}

fn dedupe_lookup(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    // Not durable: this measures the lookup and the write of the duplicate record, not fsync
    // (and the hand-over to the store's sequencer thread and back).
    let store = SledStore::open(dir.path(), false).expect("sled");
    let first = ulid::Ulid::new().to_string();
    let inserted =
        futures::executor::block_on(store.insert_event(new_event(first.clone(), "evt_seen")))
            .expect("insert");
    assert_eq!(inserted, Inserted::Accepted { id: first });
    let n = AtomicU64::new(0);
    c.bench_function("store/dedupe hit (insert_event)", |b| {
        b.iter(|| {
            let id = format!("dup{:020}", n.fetch_add(1, Ordering::Relaxed));
            let inserted =
                futures::executor::block_on(store.insert_event(new_event(id, "evt_seen")))
                    .expect("insert");
            assert!(matches!(inserted, Inserted::Duplicate { .. }));
        })
    });
    // The same, 64 at a time as concurrent requests arrive: the store's sequencer takes them
    // as one batch, so the hand-overs are shared. Timed per event.
    c.bench_function("store/dedupe hit, per event of 64 at once", |b| {
        b.iter_custom(|iters| {
            let started = std::time::Instant::now();
            for _ in 0..iters {
                let inserts: Vec<_> = (0..64)
                    .map(|_| {
                        let id = format!("dup{:020}", n.fetch_add(1, Ordering::Relaxed));
                        store.insert_event(new_event(id, "evt_seen"))
                    })
                    .collect();
                for inserted in futures::executor::block_on(futures::future::join_all(inserts)) {
                    assert!(matches!(inserted, Ok(Inserted::Duplicate { .. })));
                }
            }
            started.elapsed() / 64
        })
    });
}

criterion_group! {
    name = micro;
    // Short measurements, so `cargo bench` finishes in a few minutes.
    config = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = signature_verification, connector_calls, dedupe_lookup
}
criterion_main!(micro);
