//! The shared state of a running host: start-up, reloads, and operator overrides.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::{Config, ConnectorConfig};
use crate::deliver::{Deliverer, LastErrors};
use crate::destination::Destinations;
use crate::dispatch::Dispatcher;
use crate::metrics::Metrics;
use crate::plugin::registry::load_connector;
use crate::plugin::{Connector, Limits, Registry, Runtime};
use crate::store::Storage;
use crate::store::sled::{SledStore, StoreOptions};
use crate::tasks::Background;

/// Why an operator's command on the running host ([`App::reload`], [`App::set_paused`])
/// was refused or failed; the HTTP edge answers each with its own status.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No enabled connector has this id.
    #[error("no enabled connector `{0}`")]
    NoConnector(String),
    /// No `[[destination]]` has this id.
    #[error("no destination `{0}`")]
    NoDestination(String),
    /// The config file does not load (its path and why); the running config stays.
    #[error("{0}")]
    InvalidConfig(String),
    /// What the command stores (the pause override) could not be stored.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
}

/// The running host: its config, the handles its stages share, and the operator's
/// commands (reloads, pauses). The stages themselves are handed only what they use
/// ([`Dispatcher`], [`Deliverer`]); `App` is what the admin API, the watchers and start-up
/// work with.
pub struct App {
    /// The config as started. `[server]`, `[storage]` and `[plugins]` need a restart to
    /// change; connectors are reloaded (see [`App::reload`]).
    pub config: Config,
    pub storage: Arc<dyn Storage>,
    pub runtime: Arc<Runtime>,
    pub connectors: Arc<Registry>,
    /// The newest `[[connector]]` list (disabled ones included), in file order.
    connector_configs: ArcSwap<Vec<ConnectorConfig>>,
    /// One reload at a time; later requests wait and then see the newest files.
    reload_lock: tokio::sync::Mutex<()>,
    /// Why the newest config reload failed (the previous config keeps running).
    pub last_config_error: ArcSwap<Option<String>>,
    /// Reloads done since start (file changes, API, SIGHUP).
    pub reloads: std::sync::atomic::AtomicU64,
    /// Outbound HTTP client (deliveries and `http.fetch`), one connection pool.
    pub http: reqwest::Client,
    /// Told when the connectors changed (a reload, a pause or resume): the dispatchers
    /// follow (`dispatch.rs`).
    pub(crate) connectors_changed: Arc<tokio::sync::Notify>,
    /// Cancelled on shutdown: every background task watches it.
    pub shutdown: CancellationToken,
    /// Every background task, so shutdown can wait for them.
    pub tasks: TaskTracker,
    /// The dispatch stage's handles (`dispatch::start`); its deliverer is the delivery
    /// stage's (`deliver::start`).
    pub dispatcher: Dispatcher,
    /// The last cluster-wide reload this host announced or followed (NATS).
    reload_generation: std::sync::Mutex<Option<Vec<u8>>>,
    /// Each connector's latest failed delivery try on this host (since it started), for
    /// `GET /v1/connectors`.
    pub last_delivery_errors: Arc<LastErrors>,
    /// What `GET /metrics` shows.
    pub metrics: Arc<Metrics>,
    /// The `[[destination]]`s and their state (the deliverer's own).
    pub destinations: Arc<Destinations>,
}

/// How long a node holds an event or a delivery before another may take it over (NATS):
/// three times the longest a connector call or a delivery try may take (with a
/// destination's wait for its limits), and 5 s at least.
fn lease_time(config: &Config) -> Duration {
    let longest = config
        .connectors
        .iter()
        .map(|c| c.retry.timeout)
        .chain(
            config
                .destinations
                .iter()
                .filter_map(|d| d.retry.timeout)
                .map(|t| t + crate::destination::MAX_WAIT),
        )
        .chain([config.plugins.deadline, config.retry.timeout])
        .max()
        .unwrap_or_default();
    (longest * 3).max(Duration::from_secs(5))
}

/// How often a host on NATS looks for what another host's API changed.
const FOLLOW_EVERY: Duration = Duration::from_secs(1);

/// Concurrent outbound deliveries at most.
const DELIVERY_CONCURRENCY: usize = 256;

/// Where operator overrides live in the store's kv (a namespace no connector id can have).
const OVERRIDES: &str = crate::store::HOST_KV;

/// A pause or resume from the API. It holds until the config file's own `paused` value for
/// that connector changes (the newest instruction wins), and survives restarts.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct PauseOverride {
    paused: bool,
    /// The file's value when the override was set.
    file_paused: bool,
}

/// What a reload changed.
#[derive(Debug, Default, Clone, Serialize, utoipa::ToSchema)]
pub struct ReloadReport {
    pub loaded: Vec<String>,
    pub unchanged: Vec<String>,
    pub removed: Vec<String>,
    /// Connector id → why its newest version was refused.
    pub failed: HashMap<String, String>,
}

impl App {
    /// Open storage, start the engine and load every enabled connector.
    pub async fn start(config: Config) -> anyhow::Result<Arc<App>> {
        let storage: Arc<dyn Storage> = match config.storage.backend {
            crate::config::Backend::Sled => Arc::new(
                SledStore::open_with(
                    &config.storage.path,
                    StoreOptions {
                        durable: config.storage.durable,
                        retention: Duration::from_secs(
                            u64::from(config.storage.retention_days) * 86_400,
                        ),
                    },
                )
                .with_context(|| format!("opening {}", config.storage.path.display()))?,
            ),
            crate::config::Backend::Nats => {
                let st = &config.storage;
                let probe = crate::store::nats::probe(st).await?;
                tracing::info!(
                    server = %probe.server_name,
                    version = %probe.version,
                    cluster = probe.cluster.as_deref().unwrap_or("none"),
                    "storage on NATS JetStream: {}",
                    crate::store::nats::durability(&probe, st.replicas)
                );
                Arc::new(
                    crate::store::nats::NatsStore::open(
                        st,
                        crate::store::nats::NatsOptions {
                            retention: Duration::from_secs(u64::from(st.retention_days) * 86_400),
                            dedupe_window: st.dedupe_window,
                            ack_wait: lease_time(&config),
                        },
                    )
                    .await
                    .with_context(|| format!("opening NATS at {}", st.nats_urls.join(", ")))?,
                )
            }
        };
        // wasmtime's cache wants an absolute path; ours may be relative to the working dir.
        let cache_dir = std::path::absolute(
            config
                .plugins
                .cache_dir
                .clone()
                .unwrap_or_else(|| config.storage.path.join("compiled")),
        )
        .context("resolving plugins.cache_dir")?;
        let runtime = Runtime::new(
            Limits {
                deadline: config.plugins.deadline,
                max_memory_bytes: config.plugins.max_memory_bytes as usize,
                max_deliveries: config.plugins.max_deliveries,
                max_delivery_bytes: config.plugins.max_delivery_bytes,
                max_result_bytes: config.plugins.max_result_bytes,
            },
            Some(&cache_dir),
        )?;
        let http = crate::outbound::client().context("building the HTTP client")?;
        let runtime = Arc::new(runtime);
        let connectors = Arc::new(Registry::default());
        let metrics = Arc::new(Metrics::new());
        let last_delivery_errors = Arc::new(LastErrors::default());
        let connectors_changed = Arc::new(tokio::sync::Notify::new());
        let shutdown = CancellationToken::new();
        let tasks = TaskTracker::new();
        let background = Background::new(tasks.clone(), shutdown.clone());
        let destinations = Arc::new(Destinations::new(
            &config.destinations,
            &config.alerts,
            crate::outbound::operator_client().context("building the HTTP client")?,
        ));
        crate::destination::restore(storage.as_ref(), &destinations).await;
        let deliverer = Deliverer {
            storage: storage.clone(),
            connectors: connectors.clone(),
            destinations: destinations.clone(),
            http: http.clone(),
            slots: Arc::new(tokio::sync::Semaphore::new(DELIVERY_CONCURRENCY)),
            metrics: metrics.clone(),
            last_errors: last_delivery_errors.clone(),
            background: background.clone(),
        };
        let dispatcher = Dispatcher {
            storage: storage.clone(),
            connectors: connectors.clone(),
            runtime: runtime.clone(),
            metrics: metrics.clone(),
            call_slots: Arc::new(tokio::sync::Semaphore::new(config.server.worker_count())),
            workers: config.server.worker_count(),
            changed: connectors_changed.clone(),
            deliverer,
            background,
        };
        let app = Arc::new(App {
            storage,
            runtime,
            connectors,
            connector_configs: ArcSwap::from_pointee(config.connectors.clone()),
            reload_lock: tokio::sync::Mutex::new(()),
            last_config_error: ArcSwap::from_pointee(None),
            reloads: Default::default(),
            http,
            connectors_changed,
            shutdown,
            tasks,
            dispatcher,
            reload_generation: Default::default(),
            last_delivery_errors,
            metrics,
            destinations,
            config,
        });
        let configs = app.connector_configs.load_full();
        app.apply(&configs, None).await;
        Ok(app)
    }

    /// Re-read the config file (when the host was started from one) and the plugins dir,
    /// and swap in what changed: new, replaced, removed, enabled, disabled, paused or
    /// re-configured connectors. `only` limits the plugin reload to one connector. Events
    /// in a connector call finish on the version they started with.
    pub async fn reload(&self, only: Option<&str>) -> Result<ReloadReport, ControlError> {
        let _one_at_a_time = self.reload_lock.lock().await;
        self.reloads
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let configs = match &self.config.source {
            Some(path) => match Config::load(path) {
                Ok(config) => {
                    if config.server != self.config.server
                        || config.storage != self.config.storage
                        || config.plugins != self.config.plugins
                    {
                        tracing::warn!(
                            "changes to [server], [storage] or [plugins] take effect at the next start"
                        );
                    }
                    self.last_config_error.store(Arc::new(None));
                    self.destinations
                        .apply(&config.destinations, &config.alerts);
                    Arc::new(config.connectors)
                }
                Err(err) => {
                    let err = format!("{}: {err}", path.display());
                    tracing::error!("config reload refused, the running config stays: {err}");
                    self.last_config_error.store(Arc::new(Some(err.clone())));
                    return Err(ControlError::InvalidConfig(err));
                }
            },
            None => self.connector_configs.load_full(),
        };
        // An enable or disable stored by another host (NATS) takes effect here too.
        crate::destination::restore(self.storage.as_ref(), &self.destinations).await;
        if let Some(id) = only
            && !configs.iter().any(|c| c.id == id && c.enabled)
        {
            return Err(ControlError::NoConnector(id.to_string()));
        }
        let report = self.apply(&configs, only).await;
        self.connector_configs.store(configs);
        Ok(report)
    }

    /// Build the next registry from `configs` and swap it in.
    async fn apply(&self, configs: &[ConnectorConfig], only: Option<&str>) -> ReloadReport {
        let mut report = ReloadReport::default();
        let mut next = HashMap::new();
        for config in configs.iter().filter(|c| c.enabled) {
            let previous = self.connectors.get(&config.id);
            let paused = self.effective_paused(config).await;
            if let (Some(only), Some(previous)) = (only, &previous)
                && only != config.id
            {
                next.insert(config.id.clone(), previous.clone());
                continue;
            }
            let connector = load_connector(
                &self.runtime,
                &self.config.plugins.dir,
                config,
                paused,
                self.storage.clone(),
                self.http.clone(),
                previous.as_deref(),
            )
            .await;
            // A refused build or config is a failure even when the previous one, unchanged,
            // keeps serving.
            if let Some(err) = connector.state.load_error() {
                report.failed.insert(config.id.clone(), err.to_owned());
            } else if previous.as_ref().is_some_and(|p| connector.same_as(p)) {
                report.unchanged.push(config.id.clone());
            } else {
                report.loaded.push(config.id.clone());
            }
            next.insert(config.id.clone(), Arc::new(connector));
        }
        for old in self.connectors.all() {
            if !next.contains_key(&old.config.id) {
                report.removed.push(old.config.id.clone());
            }
        }
        self.connectors.replace(next);
        self.connectors_changed.notify_one();
        report
    }

    /// Every configured connector (disabled ones included), in file order.
    pub fn connector_configs(&self) -> Arc<Vec<ConnectorConfig>> {
        self.connector_configs.load_full()
    }

    /// The API's pause/resume override if it still holds, else the file's `paused`.
    async fn effective_paused(&self, config: &ConnectorConfig) -> bool {
        match self.pause_override(&config.id).await {
            Some(o) if o.file_paused == config.paused => o.paused,
            Some(_) => {
                // The file changed `paused` since the override: the file wins now.
                let _ = self
                    .storage
                    .kv_delete(OVERRIDES, &format!("pause/{}", config.id))
                    .await;
                config.paused
            }
            None => config.paused,
        }
    }

    async fn pause_override(&self, id: &str) -> Option<PauseOverride> {
        let bytes = self
            .storage
            .kv_get(OVERRIDES, &format!("pause/{id}"))
            .await
            .ok()??;
        serde_json::from_slice(&bytes).ok()
    }

    /// `POST /v1/connectors/{id}/pause|resume`: takes effect at once, no plugin reload.
    pub async fn set_paused(&self, id: &str, paused: bool) -> Result<Arc<Connector>, ControlError> {
        let _one_at_a_time = self.reload_lock.lock().await;
        let current = self
            .connectors
            .get(id)
            .ok_or_else(|| ControlError::NoConnector(id.to_string()))?;
        let file_paused = self
            .connector_configs
            .load()
            .iter()
            .find(|c| c.id == id)
            .map_or(current.config.paused, |c| c.paused);
        let record = PauseOverride {
            paused,
            file_paused,
        };
        self.storage
            .kv_set(
                OVERRIDES,
                &format!("pause/{id}"),
                &serde_json::to_vec(&record).unwrap_or_default(),
            )
            .await?;
        let updated = Arc::new(current.with_paused(paused));
        self.connectors.insert(updated.clone());
        self.connectors_changed.notify_one();
        Ok(updated)
    }

    /// `POST /v1/destinations/{id}/enable|disable`: at once, stored so it holds across
    /// restarts (until the file's own `enabled` changes). Enabling sends the
    /// `destination.enabled` alert when the destination was disabled.
    pub async fn set_destination_enabled(
        &self,
        id: &str,
        enabled: bool,
    ) -> Result<crate::destination::DestinationState, ControlError> {
        let destination = self
            .destinations
            .get(id)
            .ok_or_else(|| ControlError::NoDestination(id.to_string()))?;
        let was = destination.state().disabled;
        if enabled {
            destination.enable();
        } else {
            destination.disable(crate::destination::Disabled::Operator);
        }
        crate::destination::remember(self.storage.as_ref(), &destination).await;
        let kind = match (was, enabled) {
            (crate::destination::Disabled::No, true) => None,
            (_, true) => Some("destination.enabled"),
            (crate::destination::Disabled::No, false) => Some("destination.disabled"),
            (_, false) => None,
        };
        tracing::info!(destination = %id, enabled, "destination set by the operator");
        if let Some(kind) = kind {
            let destinations = self.destinations.clone();
            let destination = destination.clone();
            self.spawn(async move {
                crate::destination::alert(
                    &destinations.http,
                    &destinations.alerts(),
                    &destination,
                    kind,
                )
                .await;
            });
        }
        Ok(destination.state())
    }

    /// On NATS, make a reload of this host a reload of every host: the others see the new
    /// generation ([`App::follow_cluster`]) and reload too.
    pub async fn announce_reload(&self) {
        if self.config.storage.backend != crate::config::Backend::Nats {
            return;
        }
        let generation = ulid::Ulid::new().to_string().into_bytes();
        *self
            .reload_generation
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(generation.clone());
        if let Err(err) = self.storage.kv_set(OVERRIDES, "reload", &generation).await {
            tracing::warn!("announcing the reload to the other hosts: {err}");
        }
    }

    /// On NATS: follow what the API of another host changed, every [`FOLLOW_EVERY`]: a
    /// pause or resume, a destination's enable or disable (stored in the shared overrides)
    /// and a reload.
    pub async fn follow_cluster(self: Arc<Self>) {
        if self.config.storage.backend != crate::config::Backend::Nats {
            return;
        }
        // What was announced before this host started is in what it loaded.
        let before = self
            .storage
            .kv_get(OVERRIDES, "reload")
            .await
            .ok()
            .flatten();
        *self
            .reload_generation
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = before;
        loop {
            tokio::time::sleep(FOLLOW_EVERY).await;
            let announced = self
                .storage
                .kv_get(OVERRIDES, "reload")
                .await
                .ok()
                .flatten();
            let ours = self
                .reload_generation
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .clone();
            if announced.is_some() && announced != ours {
                *self
                    .reload_generation
                    .lock()
                    .unwrap_or_else(|p| p.into_inner()) = announced;
                tracing::info!("another host reloaded: reloading");
                if let Err(err) = self.reload(None).await {
                    tracing::error!("reload after another host's failed: {err}");
                }
                continue;
            }
            crate::destination::restore(self.storage.as_ref(), &self.destinations).await;
            for connector in self.connectors.all() {
                let Some(config) = self
                    .connector_configs
                    .load()
                    .iter()
                    .find(|c| c.id == connector.config.id)
                    .cloned()
                else {
                    continue;
                };
                let paused = self.effective_paused(&config).await;
                if paused != connector.paused {
                    tracing::info!(connector = %config.id, paused, "another host paused or resumed it");
                    let _one_at_a_time = self.reload_lock.lock().await;
                    self.connectors
                        .insert(Arc::new(connector.with_paused(paused)));
                    self.connectors_changed.notify_one();
                }
            }
        }
    }

    /// The ingress stage's handles (`ingress::routes`).
    pub fn ingress(&self) -> crate::ingress::Ingress {
        crate::ingress::Ingress {
            storage: self.storage.clone(),
            connectors: self.connectors.clone(),
            runtime: self.runtime.clone(),
            metrics: self.metrics.clone(),
            max_body_bytes: self.config.server.max_body_bytes,
            body_timeout: self.config.server.body_timeout,
            dedupe_window: self.config.storage.dedupe_window,
        }
    }

    /// Run `work` as a background task that stops at shutdown.
    pub fn spawn<F>(&self, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        self.dispatcher.background.spawn(work);
    }
}
