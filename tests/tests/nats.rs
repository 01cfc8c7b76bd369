//! The NATS JetStream engine against real servers of the tests' own (nats-server 2.15,
//! `tests/src/nats.rs`): the conformance suite every engine passes.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use switchyard::store::conformance::{self, Fresh};
use switchyard::store::nats::{NatsOptions, NatsStore};
use switchyard_tests::nats::{NatsServer, storage, wait_jetstream_ready};
use switchyard_tests::*;

fn options() -> NatsOptions {
    NatsOptions {
        retention: Duration::from_secs(30 * 86_400),
        dedupe_window: Duration::from_secs(7 * 86_400),
        ack_wait: Duration::from_secs(30),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_nats_engine_conforms() {
    let server = NatsServer::start();
    let url = server.url();
    let mut n = 0;
    conformance::run("nats", || {
        n += 1;
        // A deployment of its own on the shared server, as `nats_prefix` allows.
        let config = storage(vec![url.clone()], &format!("c{n}"));
        async move {
            let store = NatsStore::open(&config, options()).await.expect("open");
            Fresh {
                store: Arc::new(store),
                keep: Box::new(()),
            }
        }
    })
    .await;
    drop(server);
}

/// The config of a host on NATS at `urls` with deployment `prefix`, forwarding Stripe
/// events to `receiver`.
fn nats_host_config(dirs: &Dirs, urls: &[String], prefix: &str, receiver: &Receiver) -> String {
    let urls: Vec<String> = urls.iter().map(|u| format!("\"{u}\"")).collect();
    format!(
        r#"
[server]
listen = "127.0.0.1:0"
admin_token = "{ADMIN_TOKEN}"
[storage]
backend = "nats"
nats_url = [{urls}]
nats_prefix = "{prefix}"
path = "{data}"
[plugins]
dir = "{plugins}"
watch = false
"#,
        urls = urls.join(", "),
        data = dirs.data().display(),
        plugins = dirs.plugins().display(),
    ) + &stripe_connector(receiver, "")
}

/// One host on NATS does what it does on sled: a 200 once stored, a duplicate for a
/// repeat, the delivery with its `Idempotency-Key`, the event log and a replay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_on_nats_stores_dedupes_delivers_and_replays() {
    let server = NatsServer::start();
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let host = Host::start(&nats_host_config(
        &dirs,
        &[server.url()],
        "single",
        &receiver,
    ))
    .await;

    let evt = evt_id();
    let body = stripe_event(&evt, "invoice.paid");
    let response = send_stripe(&host, &body).await;
    assert_eq!(response.status(), 200);
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["status"], "accepted");
    let id = answer["id"].as_str().unwrap().to_string();
    let again: serde_json::Value = send_stripe(&host, &body).await.json().await.unwrap();
    assert_eq!(again["status"], "duplicate");
    assert_eq!(again["id"], id.as_str(), "the first event's id");

    let delivered = receiver.wait_delivered(1).await;
    assert_eq!(delivered[0].header("x-stripe-event-id"), Some(evt.as_str()));
    assert_eq!(
        delivered[0].header("idempotency-key"),
        Some(format!("{id}-0").as_str())
    );
    let record = host.wait_for_status(&id, "succeeded").await;
    assert_eq!(record["request"]["body"].as_str().unwrap().as_bytes(), body);
    assert_eq!(record["deliveries"][0]["status"], "succeeded");
    let list: serde_json::Value = host
        .admin_get("/v1/events?connector=stripe")
        .await
        .json()
        .await
        .unwrap();
    let listed: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["status"].as_str().unwrap())
        .collect();
    assert_eq!(listed, vec!["duplicate", "succeeded"], "{list}");

    let replayed = host.admin_post(&format!("/v1/events/{id}/replay")).await;
    assert_eq!(replayed.status(), 202);
    let delivered = receiver.wait_delivered(2).await;
    assert_eq!(
        delivered[1].header("x-stripe-event-id"),
        Some(evt.as_str()),
        "the replay ran the connector again"
    );
    host.stop().await;
}

/// Send `body` (a signed Stripe event) to the first of `hosts` that answers 200, starting
/// at `first` and going round, for up to a minute (Stripe retries for days; a cluster
/// that lost a node elects new leaders in seconds); the answer's JSON.
async fn send_until_stored(
    client: &reqwest::Client,
    hosts: &[String],
    first: usize,
    body: &[u8],
) -> Option<serde_json::Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut attempt = 0;
    while tokio::time::Instant::now() < deadline {
        let url = &hosts[(first + attempt) % hosts.len()];
        attempt += 1;
        let mut request = client
            .post(format!("{url}/hooks/stripe"))
            .body(body.to_vec());
        for (k, v) in stripe_headers(STRIPE_SECRET, body, now()) {
            request = request.header(k, v);
        }
        if let Ok(response) = request.send().await
            && response.status() == 200
        {
            return response.json().await.ok();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Three `switchyard serve` processes on a 3-node JetStream cluster, events replicated 3
/// times. Four senders spread unique events over the hosts; midway one host and one NATS
/// node are killed with `kill -9`, and the senders send what got no answer to another host.
/// Every event that got a 200 is delivered, each under one `Idempotency-Key`, and the event
/// log of each surviving host lists all of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_hosts_on_a_cluster_lose_nothing_when_a_host_and_a_node_die() {
    const SENDERS: usize = 4;
    const PER_SENDER: usize = 75;
    let mut cluster = switchyard_tests::nats::NatsCluster::start(3);
    let urls = cluster.urls();
    wait_jetstream_ready(&urls).await;
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let mut hosts = Vec::new();
    for n in 0..3 {
        let data = dirs.root.path().join(format!("host{n}"));
        let config = nats_host_config(&dirs, &urls, "scale", &receiver)
            .replace(
                &dirs.data().display().to_string(),
                &data.display().to_string(),
            )
            .replace("[storage]", "[storage]\nreplicas = 3")
            .replace("watch = false", "watch = false\ndeadline = \"1s\"")
            + "timeout = \"1s\"\n";
        let path = dirs.root.path().join(format!("host{n}.toml"));
        std::fs::write(&path, config).unwrap();
        hosts.push(ChildHost::start(&path));
    }
    let addresses: Vec<String> = hosts.iter().map(|h| h.url("")).collect();

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let stored = Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let senders: Vec<_> = (0..SENDERS)
        .map(|s| {
            let (client, addresses, stored) = (client.clone(), addresses.clone(), stored.clone());
            tokio::spawn(async move {
                for k in 0..PER_SENDER {
                    let evt = evt_id();
                    let body = stripe_event(&evt, "invoice.paid");
                    let answer = send_until_stored(&client, &addresses, s + k, &body).await;
                    let Some(answer) = answer else {
                        return Err(format!("{evt}: no host stored it"));
                    };
                    let id = answer["id"].as_str().unwrap().to_string();
                    stored.lock().unwrap().push((evt, id));
                }
                Ok(())
            })
        })
        .collect();

    // Midway: a host and a NATS node die.
    let count = stored.clone();
    wait_for(
        "a third of the events stored",
        Duration::from_secs(120),
        move || {
            let count = count.clone();
            async move { count.lock().unwrap().len() >= SENDERS * PER_SENDER / 3 }
        },
    )
    .await;
    hosts.remove(0).kill_9();
    cluster.nodes[2].kill_9();
    for sender in senders {
        if let Err(err) = sender.await.unwrap() {
            let logs: Vec<String> = hosts
                .iter()
                .map(|h| h.log.lock().unwrap().clone())
                .collect();
            panic!("{err}\nhost logs:\n{}", logs.join("\n---\n"));
        }
    }
    let stored = stored.lock().unwrap().clone();
    assert_eq!(
        stored.len(),
        SENDERS * PER_SENDER,
        "every event got a 200 somewhere"
    );

    let want: HashSet<String> = stored.iter().map(|(evt, _)| evt.clone()).collect();
    let missing = receiver
        .wait_for_stripe_events(&want, Duration::from_secs(120))
        .await;
    let logs = || {
        hosts
            .iter()
            .map(|h| h.log.lock().unwrap().clone())
            .collect::<Vec<_>>()
            .join("\n---\n")
    };
    assert!(
        missing.is_empty(),
        "{} of {} stored events never delivered: {missing:?}\nhost logs:\n{}",
        missing.len(),
        want.len(),
        logs()
    );
    // Each event was handled under one key: repeats (at least once) carry the same one.
    let mut keys: HashMap<String, HashSet<String>> = HashMap::new();
    for delivery in receiver.delivered() {
        if let (Some(evt), Some(key)) = (
            delivery.header("x-stripe-event-id"),
            delivery.header("idempotency-key"),
        ) {
            keys.entry(evt.to_string())
                .or_default()
                .insert(key.to_string());
        }
    }
    for evt in &want {
        assert_eq!(
            keys[evt].len(),
            1,
            "{evt} was handled as one event: {:?}",
            keys[evt]
        );
    }
    let repeats = receiver.delivered().len() - want.len();
    // The log of every surviving host lists every event.
    for host in &hosts {
        let mut listed = HashSet::new();
        let mut cursor: Option<String> = None;
        loop {
            let path = match &cursor {
                Some(c) => format!("/v1/events?limit=200&cursor={c}"),
                None => "/v1/events?limit=200".to_string(),
            };
            let page: serde_json::Value = host.admin_get(&path).await.json().await.unwrap();
            for event in page["data"].as_array().unwrap() {
                if let Some(key) = event["dedupe_key"].as_str() {
                    listed.insert(key.to_string());
                }
            }
            match page["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_string()),
                None => break,
            }
        }
        let unlisted: Vec<&String> = want.difference(&listed).collect();
        assert!(
            unlisted.is_empty(),
            "{} not in a host's log: {unlisted:?}",
            unlisted.len()
        );
    }
    eprintln!(
        "cluster: {} events stored over 3 hosts (one killed), a NATS node killed; all \
         delivered, {repeats} deliveries repeated under the same key",
        want.len()
    );
}

/// One dedupe key sent to two hosts at the same moment: one copy is accepted, the other
/// is its duplicate, every time (the claim is one atomic `create` in the cluster's bucket).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_event_at_two_hosts_at_once_is_accepted_once() {
    let server = NatsServer::start();
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let config = nats_host_config(&dirs, &[server.url()], "race", &receiver);
    let (a, b) = (Host::start(&config).await, Host::start(&config).await);
    // A copy that comes while the first one's claim is made but its event not yet
    // published is answered 503 (nothing is stored for it); the sender retries, as Stripe
    // would, and then learns it is a duplicate.
    async fn answer(host: &Host, body: &[u8]) -> serde_json::Value {
        for _ in 0..100 {
            let response = send_stripe(host, body).await;
            if response.status() != 503 {
                assert_eq!(response.status(), 200);
                return response.json().await.unwrap();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("still 503 after 10 s");
    }
    for _ in 0..20 {
        let body = stripe_event(&evt_id(), "invoice.paid");
        let (first, second) = tokio::join!(answer(&a, &body), answer(&b, &body));
        let mut statuses = [
            first["status"].as_str().unwrap().to_string(),
            second["status"].as_str().unwrap().to_string(),
        ];
        statuses.sort();
        assert_eq!(statuses, ["accepted", "duplicate"], "{first} {second}");
        assert_eq!(
            first["id"], second["id"],
            "the duplicate names the accepted one"
        );
    }
    receiver.wait_delivered(20).await;
    a.stop().await;
    b.stop().await;
}

/// NATS going away is a 503 for senders, never a 200; when it is back the host carries on
/// by itself, with what it had and what comes next.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_down_is_a_503_and_the_host_recovers_when_it_is_back() {
    let mut server = NatsServer::start();
    let receiver = Receiver::start().await;
    let dirs = Dirs::new(&["stripe.wasm"]);
    let host = Host::start(&nats_host_config(&dirs, &[server.url()], "down", &receiver)).await;
    let before = evt_id();
    assert_eq!(
        send_stripe(&host, &stripe_event(&before, "invoice.paid"))
            .await
            .status(),
        200
    );
    receiver.wait_delivered(1).await;

    server.kill_9();
    let response = send_stripe(&host, &stripe_event(&evt_id(), "invoice.paid")).await;
    assert_eq!(response.status(), 503, "never a 200 without NATS");
    let answer: serde_json::Value = response.json().await.unwrap();
    assert_eq!(answer["error"]["code"], "unavailable");

    server.restart();
    let after = evt_id();
    let client_retries = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let response = send_stripe(&host, &stripe_event(&after, "invoice.paid")).await;
        if response.status() == 200 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < client_retries,
            "the host did not recover: {}",
            response.status()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let want: HashSet<String> = [before, after].into_iter().collect();
    let missing = receiver
        .wait_for_stripe_events(&want, Duration::from_secs(60))
        .await;
    assert!(
        missing.is_empty(),
        "delivered after NATS came back: {missing:?}"
    );
    host.stop().await;
}

/// `stripe.wasm` with a custom section appended: the same connector, another digest.
fn another_stripe_build() -> Vec<u8> {
    use wasm_encoder::ComponentSection as _;
    let mut build = std::fs::read(plugin("stripe.wasm")).unwrap();
    wasm_encoder::CustomSection {
        name: "switchyard-test".into(),
        data: ulid::Ulid::new().to_string().into_bytes().into(),
    }
    .append_to_component(&mut build);
    build
}

/// A build pushed once (`switchyard plugin push`) runs on every host within seconds, each
/// attempt naming its digest; a build that does not load is refused by the push, and, put
/// into the store anyway, by every host, which keeps serving the good one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_pushed_once_runs_on_every_host() {
    let server = NatsServer::start();
    let receiver = Receiver::start().await;
    let (mut hosts, mut all_dirs) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let dirs = Dirs::new(&["stripe.wasm"]);
        hosts.push(Host::start(&nats_host_config(&dirs, &[server.url()], "push", &receiver)).await);
        all_dirs.push(dirs);
    }
    let digest_on = |host: &Host| {
        let url = host.url("/v1/connectors/stripe");
        let http = host.http.clone();
        async move {
            let body: serde_json::Value = http
                .get(url)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            body
        }
    };

    // Pushed with the CLI, against the first host's config.
    let build = another_stripe_build();
    let file = all_dirs[0].root.path().join("stripe.wasm");
    std::fs::write(&file, &build).unwrap();
    let config = all_dirs[0].root.path().join("push.toml");
    std::fs::write(
        &config,
        nats_host_config(&all_dirs[0], &[server.url()], "push", &receiver),
    )
    .unwrap();
    let output = tokio::process::Command::new(binary())
        .args(["plugin", "push"])
        .arg(&file)
        .arg("--config")
        .arg(&config)
        .output()
        .await
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let digest = switchyard::plugin::engine::digest(&build);
    assert!(String::from_utf8_lossy(&output.stdout).contains(&digest));
    // Every host loads it. Only then are events sent: any host may run an event another
    // one took (they share the connector's queue), so one that had not swapped yet could.
    for (n, host) in hosts.iter().enumerate() {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            if digest_on(host).await["digest"] == digest.as_str() {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "host {n} never loaded the pushed build"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for (n, host) in hosts.iter().enumerate() {
        let answer: serde_json::Value = send_stripe(host, &stripe_event(&evt_id(), "invoice.paid"))
            .await
            .json()
            .await
            .unwrap();
        let id = answer["id"].as_str().unwrap();
        let record = host.wait_for_status(id, "succeeded").await;
        assert_eq!(
            record["attempts"][0]["plugin_digest"],
            digest.as_str(),
            "host {n} ran the pushed build"
        );
    }

    // A garbage build: the API refuses it…
    let refused = hosts[1]
        .http
        .post(hosts[1].url("/v1/plugins/stripe.wasm"))
        .bearer_auth(ADMIN_TOKEN)
        .body(b"\0asm garbage".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 422);
    // …and put into the store anyway, every host refuses it and keeps the good one.
    let storage = storage(vec![server.url()], "push");
    switchyard::store::nats::plugins::Plugins::open(&storage)
        .await
        .unwrap()
        .push("stripe.wasm", b"\0asm garbage")
        .await
        .unwrap();
    for (n, host) in hosts.iter().enumerate() {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let connector = digest_on(host).await;
            if connector["last_error"].is_string() {
                assert_eq!(
                    connector["digest"],
                    digest.as_str(),
                    "host {n} keeps serving"
                );
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "host {n} never saw the bad build: {connector}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for host in hosts {
        host.stop().await;
    }
}

/// A pause or resume through one host's API applies on every host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pause_through_one_host_pauses_every_host() {
    let server = NatsServer::start();
    let receiver = Receiver::start().await;
    let (dirs_a, dirs_b) = (Dirs::new(&["stripe.wasm"]), Dirs::new(&["stripe.wasm"]));
    let a = Host::start(&nats_host_config(
        &dirs_a,
        &[server.url()],
        "pause",
        &receiver,
    ))
    .await;
    let b = Host::start(&nats_host_config(
        &dirs_b,
        &[server.url()],
        "pause",
        &receiver,
    ))
    .await;
    assert_eq!(
        a.admin_post("/v1/connectors/stripe/pause").await.status(),
        200
    );
    let r = b.url("/v1/connectors/stripe");
    let http = b.http.clone();
    wait_for("host b paused", Duration::from_secs(10), move || {
        let (r, http) = (r.clone(), http.clone());
        async move {
            let c: serde_json::Value = http
                .get(r)
                .bearer_auth(ADMIN_TOKEN)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            c["paused"] == true
        }
    })
    .await;
    let evt = evt_id();
    assert_eq!(
        send_stripe(&b, &stripe_event(&evt, "invoice.paid"))
            .await
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert!(receiver.received().is_empty(), "paused on every host");
    assert_eq!(
        a.admin_post("/v1/connectors/stripe/resume").await.status(),
        200
    );
    let want: HashSet<String> = [evt].into_iter().collect();
    let missing = receiver
        .wait_for_stripe_events(&want, Duration::from_secs(20))
        .await;
    assert!(missing.is_empty(), "resumed on every host");
    a.stop().await;
    b.stop().await;
}
