//! The shared state of a running host, and its start-up and shutdown.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::plugin::registry::load_connector;
use crate::plugin::{Limits, Registry, Runtime};
use crate::store::Storage;
use crate::store::sled::SledStore;

/// Everything the stages share. One per running host.
pub struct App {
    pub config: Config,
    pub storage: Arc<dyn Storage>,
    pub runtime: Runtime,
    pub connectors: Registry,
    /// Outbound HTTP client (deliveries and `http.fetch`), one connection pool.
    pub http: reqwest::Client,
    /// Event ids ready for a connector call; the dispatch workers take from it.
    pub dispatch_tx: async_channel::Sender<String>,
    pub(crate) dispatch_rx: async_channel::Receiver<String>,
    /// Cancelled on shutdown: every background task watches it.
    pub shutdown: CancellationToken,
    /// Every background task, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// Bounds concurrent outbound deliveries.
    pub delivery_slots: Arc<tokio::sync::Semaphore>,
    /// Events a dispatch worker is handling right now: an id queued twice (a replay racing
    /// a scheduled retry) is handled once.
    pub(crate) in_flight: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// Concurrent outbound deliveries at most.
const DELIVERY_CONCURRENCY: usize = 256;

impl App {
    /// Open storage, start the engine and load every enabled connector.
    pub async fn start(config: Config) -> anyhow::Result<Arc<App>> {
        let storage: Arc<dyn Storage> = match config.storage.backend {
            crate::config::Backend::Sled => Arc::new(
                SledStore::open(&config.storage.path, config.storage.durable)
                    .with_context(|| format!("opening {}", config.storage.path.display()))?,
            ),
            crate::config::Backend::Nats => {
                anyhow::bail!("storage.backend = \"nats\" is not available in this build yet")
            }
        };
        let runtime = Runtime::new(Limits {
            deadline: config.plugins.deadline,
            max_memory_bytes: config.plugins.max_memory_bytes as usize,
        })?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(60))
            .build()
            .context("building the HTTP client")?;
        let (dispatch_tx, dispatch_rx) = async_channel::unbounded();
        let app = Arc::new(App {
            storage,
            runtime,
            connectors: Registry::default(),
            http,
            dispatch_tx,
            dispatch_rx,
            shutdown: CancellationToken::new(),
            tasks: TaskTracker::new(),
            delivery_slots: Arc::new(tokio::sync::Semaphore::new(DELIVERY_CONCURRENCY)),
            in_flight: Default::default(),
            config,
        });
        app.load_connectors().await;
        Ok(app)
    }

    /// (Re)load every enabled connector from the config and swap them in.
    pub async fn load_connectors(&self) {
        let mut loaded = HashMap::new();
        for config in self.config.connectors.iter().filter(|c| c.enabled) {
            let connector = load_connector(
                &self.runtime,
                &self.config.plugins.dir,
                config,
                self.storage.clone(),
                self.http.clone(),
            )
            .await;
            loaded.insert(config.id.clone(), Arc::new(connector));
        }
        self.connectors.replace(loaded);
    }

    /// Run `work` as a background task that stops at shutdown.
    pub fn spawn<F>(&self, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = work => {}
            }
        });
    }
}
