//! The NATS JetStream engine against real servers of the tests' own (nats-server 2.15,
//! `tests/src/nats.rs`): the conformance suite every engine passes.

use std::sync::Arc;
use std::time::Duration;

use switchyard::config::{Backend, StorageConfig};
use switchyard::store::conformance::{self, Fresh};
use switchyard::store::nats::{NatsOptions, NatsStore};
use switchyard_tests::nats::NatsServer;

/// A `[storage]` for the NATS backend at `urls`, with its own prefix.
fn storage(urls: Vec<String>, prefix: &str) -> StorageConfig {
    let mut config = switchyard::Config::from_toml_str("", &Default::default())
        .expect("defaults")
        .storage;
    config.backend = Backend::Nats;
    config.nats_urls = urls;
    config.nats_prefix = prefix.to_string();
    config
}

fn options() -> NatsOptions {
    NatsOptions {
        retention: Duration::from_secs(30 * 86_400),
        dedupe_window: Duration::from_secs(7 * 86_400),
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
