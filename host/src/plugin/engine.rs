//! The shared wasmtime engine: compiling, pre-instantiating and calling connectors.
//!
//! One [`Engine`] for the process (pooling allocator, epoch interruption), one
//! [`Plugin`] (an `InstancePre`) per loaded `.wasm`, and a fresh `Store` per `handle` call
//! with a wall-clock deadline and a memory cap, so one event cannot see or break another.
//!
//! `dedupe-key` is the exception: it runs on the ingress path of every request, where a
//! fresh instance cost more than the rest of the wasm call (instantiating and tearing down
//! a store: ~15 µs of a ~19 µs call). Its instances are kept warm and reused, at most
//! [`WARM_REUSE`] calls each, only for the same connector grants, never after a trap. The
//! WIT asks `dedupe-key` to be a pure, import-free function of the webhook, so a reused
//! instance can change nothing the connector could not already do; a guest that keeps
//! state anyway only affects its own dedupe keys, and a trap in a reused instance is
//! retried once in a fresh one (tests/tests/limits.rs shows each case).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::anyhow;
use sha2::{Digest, Sha256};
use wasmtime::component::{Component, HasSelf, Linker};
use wasmtime::{
    Config, Engine, InstanceAllocationStrategy, PoolingAllocationConfig, Store, StoreLimitsBuilder,
    UpdateDeadline,
};

use super::bindings::{Delivery, Failure, Manifest, Webhook};
use super::bindings::{current, v0_1_0};
use super::imports::{CallState, FetchRecord, Grants, LogLine};

/// How often the epoch advances; the deadline is checked at this granularity.
const EPOCH_TICK: Duration = Duration::from_millis(5);
/// A warm `dedupe-key` instance is dropped after this many calls, so whatever a guest
/// accumulates (a leak, a fragmented heap) is bounded.
pub const WARM_REUSE: u32 = 10_000;
/// Warm `dedupe-key` instances kept per plugin: ingress calls are short and never wait on
/// I/O, so about one per worker thread is in use at a time.
const WARM_INSTANCES: usize = 4;

/// Limits applied to every call.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock limit for one export call, host imports included.
    pub deadline: Duration,
    /// Linear memory cap per instance.
    pub max_memory_bytes: usize,
    /// Most deliveries one `handle` may return.
    pub max_deliveries: usize,
    /// Largest body of one returned delivery.
    pub max_delivery_bytes: usize,
    /// Largest result of one `handle` (URLs, headers and bodies together).
    pub max_result_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(10),
            max_memory_bytes: 64 << 20,
            max_deliveries: 100,
            max_delivery_bytes: 1 << 20,
            max_result_bytes: 8 << 20,
        }
    }
}

impl Limits {
    /// Why `deliveries` may not be kept, if they may not.
    fn check_output(&self, deliveries: &[Delivery]) -> Result<(), CallError> {
        let over = |what: String| Err(CallError::Oversized(what));
        if deliveries.len() > self.max_deliveries {
            return over(format!(
                "{} deliveries returned; plugins.max_deliveries is {}",
                deliveries.len(),
                self.max_deliveries
            ));
        }
        let mut total = 0usize;
        for (i, d) in deliveries.iter().enumerate() {
            if d.body.len() > self.max_delivery_bytes {
                return over(format!(
                    "delivery {i} has a body of {} bytes; plugins.max_delivery_bytes is {}",
                    d.body.len(),
                    self.max_delivery_bytes
                ));
            }
            total += d.url.len()
                + d.method.len()
                + d.body.len()
                + d.headers
                    .iter()
                    .map(|(k, v)| k.len() + v.len())
                    .sum::<usize>();
        }
        if total > self.max_result_bytes {
            return over(format!(
                "the deliveries returned take {total} bytes; plugins.max_result_bytes is {}",
                self.max_result_bytes
            ));
        }
        Ok(())
    }
}

/// The process-wide engine and linker.
#[derive(Clone)]
pub struct Runtime {
    engine: Engine,
    linker: Arc<Linker<CallState>>,
    limits: Limits,
}

/// A component pre-instantiated against the world version it was built for.
enum Pre {
    /// 0.1.1: has `check-settings`.
    V0_1_1(current::ConnectorPre<CallState>),
    V0_1_0(v0_1_0::ConnectorPre<CallState>),
}

/// An instance's exports, by world version.
enum Connector {
    V0_1_1(current::Connector),
    V0_1_0(v0_1_0::Connector),
}

impl Pre {
    /// The newest world `component` implements, else why it implements none.
    fn new(pre: wasmtime::component::InstancePre<CallState>) -> wasmtime::Result<Pre> {
        match current::ConnectorPre::new(pre.clone()) {
            Ok(pre) => Ok(Pre::V0_1_1(pre)),
            Err(newest) => v0_1_0::ConnectorPre::new(pre)
                .map(Pre::V0_1_0)
                // The newest world's complaint says what a current build lacks.
                .map_err(|_| newest),
        }
    }

    /// The WIT version the component was built against.
    fn version(&self) -> &'static str {
        match self {
            Pre::V0_1_1(_) => "0.1.1",
            Pre::V0_1_0(_) => "0.1.0",
        }
    }

    async fn instantiate(&self, store: &mut Store<CallState>) -> wasmtime::Result<Connector> {
        Ok(match self {
            Pre::V0_1_1(pre) => Connector::V0_1_1(pre.instantiate_async(store).await?),
            Pre::V0_1_0(pre) => Connector::V0_1_0(pre.instantiate_async(store).await?),
        })
    }
}

impl Connector {
    async fn call_manifest(&self, store: &mut Store<CallState>) -> wasmtime::Result<Manifest> {
        match self {
            Connector::V0_1_1(c) => c.call_manifest(store).await,
            Connector::V0_1_0(c) => c.call_manifest(store).await,
        }
    }

    async fn call_dedupe_key(
        &self,
        store: &mut Store<CallState>,
        webhook: &Webhook,
    ) -> wasmtime::Result<Option<String>> {
        match self {
            Connector::V0_1_1(c) => c.call_dedupe_key(store, webhook).await,
            Connector::V0_1_0(c) => c.call_dedupe_key(store, webhook).await,
        }
    }

    async fn call_handle(
        &self,
        store: &mut Store<CallState>,
        webhook: &Webhook,
    ) -> wasmtime::Result<Result<Vec<Delivery>, Failure>> {
        match self {
            Connector::V0_1_1(c) => c.call_handle(store, webhook).await,
            Connector::V0_1_0(c) => c.call_handle(store, webhook).await,
        }
    }

    /// `check-settings`; a 0.1.0 build has none, and its settings pass.
    async fn call_check_settings(
        &self,
        store: &mut Store<CallState>,
    ) -> wasmtime::Result<Result<(), String>> {
        match self {
            Connector::V0_1_1(c) => c.call_check_settings(store).await,
            Connector::V0_1_0(_) => Ok(Ok(())),
        }
    }
}

/// A compiled, pre-instantiated connector.
pub struct Plugin {
    pre: Pre,
    /// Idle instances for `dedupe-key` calls (see the module docs).
    warm: std::sync::Mutex<Vec<Warm>>,
    pub manifest: Manifest,
    /// `sha256:<hex>` of the `.wasm` bytes.
    pub digest: String,
    pub size: usize,
    /// When it was loaded, unix ms.
    pub loaded_at: u64,
}

/// An instantiated connector kept for further `dedupe-key` calls.
struct Warm {
    store: Store<CallState>,
    bindings: Connector,
    calls: u32,
}

impl Plugin {
    /// The WIT version it was built against (`0.1.1`, `0.1.0`).
    pub fn wit_version(&self) -> &'static str {
        self.pre.version()
    }

    /// Instances idle for `dedupe-key` calls now (tests look at it).
    pub fn warm_instances(&self) -> usize {
        self.warm.lock().map(|warm| warm.len()).unwrap_or(0)
    }

    /// A warm instance made for `grants`, if one is idle. Instances made for other grants
    /// (the connector's settings changed but its bytes did not) are dropped.
    fn take_warm(&self, grants: &Arc<Grants>) -> Option<Warm> {
        let mut warm = self.warm.lock().ok()?;
        while let Some(instance) = warm.pop() {
            if Arc::ptr_eq(&instance.store.data().grants, grants) {
                return Some(instance);
            }
        }
        None
    }

    fn put_warm(&self, instance: Warm) {
        if instance.calls >= WARM_REUSE {
            return;
        }
        if let Ok(mut warm) = self.warm.lock()
            && warm.len() < WARM_INSTANCES
        {
            warm.push(instance);
        }
    }
}

/// `sha256:<hex>` of a plugin's bytes: how a version is named in logs and attempts.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Why a `.wasm` could not be loaded. The text is shown to operators as `last_error`.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("not a WebAssembly component: {0}")]
    NotAComponent(String),
    #[error("component does not implement switchyard:connector/connector@0.1.1 (or 0.1.0): {0}")]
    WrongWorld(String),
    #[error("manifest() failed: {0}")]
    Manifest(String),
    /// `check-settings` refused the connector's settings (its message), or failed.
    #[error("settings refused: {0}")]
    Settings(String),
}

/// Why a call produced no result.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum CallError {
    #[error("deadline of {0:?} exceeded")]
    Deadline(Duration),
    #[error("connector trapped: {0}")]
    Trap(String),
    #[error("could not instantiate connector: {0}")]
    Instantiate(String),
    /// It returned more than the host keeps (`[plugins]` bounds); nothing of it is kept.
    #[error("result refused: {0}")]
    Oversized(String),
}

/// The outcome of one `handle` call, with what the connector did along the way.
#[derive(Debug)]
pub struct HandleOutcome {
    pub result: Result<Result<Vec<Delivery>, Failure>, CallError>,
    pub logs: Vec<LogLine>,
    pub fetches: Vec<FetchRecord>,
    pub duration: Duration,
    /// The linear memory the instance held at the end of the call (0 if it never ran).
    pub memory_bytes: usize,
}

impl Runtime {
    /// `cache_dir`: where compiled components are kept across restarts (wasmtime's cache,
    /// keyed by the component's bytes and the engine's version and settings).
    pub fn new(limits: Limits, cache_dir: Option<&std::path::Path>) -> anyhow::Result<Self> {
        let mut pool = PoolingAllocationConfig::default();
        // Slots are virtual-memory reservations; the counts bound concurrent instances.
        pool.total_component_instances(1_000)
            .total_core_instances(2_000)
            .total_memories(1_000)
            .total_tables(2_000)
            .total_stacks(1_000)
            .max_memory_size(limits.max_memory_bytes)
            // A fresh instance per call makes slot reuse the hot path. With PAGEMAP_SCAN
            // (Linux ≥ 6.7) only the pages a call dirtied are reset and stay resident,
            // instead of an madvise per memory whose TLB shootdowns stall both cores;
            // elsewhere decommits are at least batched.
            .pagemap_scan(wasmtime::Enabled::Auto)
            .linear_memory_keep_resident(8 << 20)
            .table_keep_resident(64 << 10)
            .async_stack_keep_resident(128 << 10)
            .decommit_batch_size(32)
            // Warm slots keep their dirtied pages resident: bound how many stay warm.
            .max_unused_warm_slots(32);
        let mut config = Config::new();
        if let Some(dir) = cache_dir {
            let mut cache = wasmtime::CacheConfig::new();
            cache.with_directory(dir);
            let cache = wasmtime::Cache::new(cache)
                .map_err(|e| anyhow!("compile cache in {}: {e:#}", dir.display()))?;
            config.cache(Some(cache));
        }
        config
            .epoch_interruption(true)
            .allocation_strategy(InstanceAllocationStrategy::Pooling(pool))
            .wasm_component_model(true);
        let engine =
            Engine::new(&config).map_err(|e| anyhow!("creating the wasm engine: {e:#}"))?;

        let mut linker = Linker::<CallState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut linker)
            .map_err(|e| anyhow!("linking WASI: {e:#}"))?;
        current::Connector::add_to_linker::<_, HasSelf<_>>(&mut linker, |state| state)
            .map_err(|e| anyhow!("linking the switchyard imports: {e:#}"))?;

        spawn_epoch_ticker(&engine);
        Ok(Runtime {
            engine,
            linker: Arc::new(linker),
            limits,
        })
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    /// Compile `bytes`, check the world, and call `manifest()`. CPU-heavy: call it off the
    /// request path (e.g. in `spawn_blocking` or a loader task).
    pub async fn load(&self, bytes: &[u8], grants: Arc<Grants>) -> Result<Plugin, LoadError> {
        let digest = digest(bytes);
        let component = {
            let engine = self.engine.clone();
            let bytes = bytes.to_vec();
            tokio::task::spawn_blocking(move || Component::new(&engine, &bytes))
                .await
                .map_err(|err| LoadError::NotAComponent(err.to_string()))?
                .map_err(|err| LoadError::NotAComponent(first_line(&err)))?
        };
        let pre = self
            .linker
            .instantiate_pre(&component)
            .and_then(Pre::new)
            .map_err(|err| LoadError::WrongWorld(format!("{err:#}")))?;
        let plugin = Plugin {
            pre,
            warm: Default::default(),
            manifest: empty_manifest(),
            digest,
            size: bytes.len(),
            loaded_at: crate::time::now_ms(),
        };
        let manifest = match self.call(&plugin, grants, Export::Manifest).await.0 {
            Ok(Returned::Manifest(manifest)) => manifest,
            Ok(_) => unreachable!("manifest() returns a manifest"),
            Err(err) => return Err(LoadError::Manifest(err.to_string())),
        };
        Ok(Plugin { manifest, ..plugin })
    }

    /// Ask `plugin` whether it takes the settings in `grants` (`check-settings`, WIT
    /// 0.1.1; a 0.1.0 build takes any). Runs in a fresh instance under the deadline.
    pub async fn check_settings(
        &self,
        plugin: &Plugin,
        grants: Arc<Grants>,
    ) -> Result<(), LoadError> {
        match self.call(plugin, grants, Export::CheckSettings).await.0 {
            Ok(Returned::CheckSettings(Ok(()))) => Ok(()),
            Ok(Returned::CheckSettings(Err(why))) => Err(LoadError::Settings(why)),
            Ok(_) => unreachable!("check-settings returns a result"),
            Err(err) => Err(LoadError::Settings(format!("check-settings failed: {err}"))),
        }
    }

    /// The connector's dedupe key for a webhook, from a warm instance when one is idle
    /// (see the module docs).
    pub async fn dedupe_key(
        &self,
        plugin: &Plugin,
        grants: Arc<Grants>,
        webhook: &Webhook,
    ) -> Result<Option<String>, CallError> {
        let deadline = self.limits.deadline;
        if let Some(mut warm) = plugin.take_warm(&grants) {
            let started = arm_deadline(&mut warm.store, deadline);
            match self.dedupe_key_in(plugin, warm, started, webhook).await {
                // A reused instance may be what broke: try once more in a fresh one. Not
                // after a deadline, which would double how long the sender waits.
                Err(CallError::Trap(err)) => {
                    tracing::debug!("dedupe-key trapped in a warm instance: {err}");
                }
                result => return result,
            }
        }
        let mut store = self.new_store(grants);
        // One deadline covers instantiating and the call.
        let started = arm_deadline(&mut store, deadline);
        let bindings = tokio::time::timeout(deadline, instantiate(plugin, &mut store))
            .await
            .map_err(|_| CallError::Deadline(deadline))??;
        let warm = Warm {
            store,
            bindings,
            calls: 0,
        };
        self.dedupe_key_in(plugin, warm, started, webhook).await
    }

    /// One `dedupe-key` call in `warm`, whose deadline was armed at `started`. The instance
    /// goes back to the plugin's idle set when the call returned normally.
    async fn dedupe_key_in(
        &self,
        plugin: &Plugin,
        mut warm: Warm,
        started: Instant,
        webhook: &Webhook,
    ) -> Result<Option<String>, CallError> {
        let deadline = self.limits.deadline;
        // Nobody reads a dedupe call's logs; clearing them keeps a reused store small.
        let state = warm.store.data_mut();
        state.logs.clear();
        state.fetches.clear();
        let call = warm.bindings.call_dedupe_key(&mut warm.store, webhook);
        let left = deadline.saturating_sub(started.elapsed());
        let key = match tokio::time::timeout(left, call).await {
            Ok(result) => result.map_err(|err| call_error(&err, started, deadline))?,
            Err(_) => return Err(CallError::Deadline(deadline)),
        };
        warm.calls += 1;
        plugin.put_warm(warm);
        Ok(key)
    }

    /// A store for one connector call: the memory cap and the connector's grants.
    fn new_store(&self, grants: Arc<Grants>) -> Store<CallState> {
        let limits = StoreLimitsBuilder::new()
            .memory_size(self.limits.max_memory_bytes)
            .trap_on_grow_failure(true)
            .build();
        let mut store = Store::new(&self.engine, CallState::new(grants, limits));
        store.limiter(|state| &mut state.limits);
        store
    }

    /// Run `handle` for one event.
    pub async fn handle(
        &self,
        plugin: &Plugin,
        grants: Arc<Grants>,
        webhook: &Webhook,
    ) -> HandleOutcome {
        let started = Instant::now();
        let (result, state) = self.call(plugin, grants, Export::Handle(webhook)).await;
        let (logs, fetches, memory_bytes) = state
            .map(|s| (s.logs, s.fetches, s.limits.memory_bytes))
            .unwrap_or_default();
        let result = result.and_then(|returned| match returned {
            Returned::Handle(Ok(deliveries)) => {
                self.limits.check_output(&deliveries)?;
                Ok(Ok(deliveries))
            }
            Returned::Handle(Err(failure)) => Ok(Err(failure)),
            _ => unreachable!("handle() returns deliveries or a failure"),
        });
        HandleOutcome {
            result,
            logs,
            fetches,
            duration: started.elapsed(),
            memory_bytes,
        }
    }

    /// Instantiate `plugin` in a fresh store and run `f` under the deadline. Returns the
    /// call's state too (logs, fetches) when the call ran to an end, trap included.
    async fn call(
        &self,
        plugin: &Plugin,
        grants: Arc<Grants>,
        export: Export<'_>,
    ) -> (Result<Returned, CallError>, Option<CallState>) {
        let deadline = self.limits.deadline;
        let mut store = self.new_store(grants);
        let started = arm_deadline(&mut store, deadline);

        let work = async {
            let bindings = instantiate(plugin, &mut store).await?;
            let returned = match export {
                Export::Manifest => bindings
                    .call_manifest(&mut store)
                    .await
                    .map(Returned::Manifest),
                Export::Handle(webhook) => bindings
                    .call_handle(&mut store, webhook)
                    .await
                    .map(Returned::Handle),
                Export::CheckSettings => bindings
                    .call_check_settings(&mut store)
                    .await
                    .map(Returned::CheckSettings),
            };
            returned.map_err(|err| call_error(&err, started, deadline))
        };
        // The epoch callback interrupts a spinning guest; this timeout covers time spent
        // awaiting host imports (a slow `http.fetch`).
        let result = match tokio::time::timeout(deadline, work).await {
            Ok(result) => result,
            Err(_) => return (Err(CallError::Deadline(deadline)), None),
        };
        (result, Some(store.into_data()))
    }
}

/// A fresh instance of `plugin` in `store`.
async fn instantiate(
    plugin: &Plugin,
    store: &mut Store<CallState>,
) -> Result<Connector, CallError> {
    plugin
        .pre
        .instantiate(store)
        .await
        .map_err(|err| CallError::Instantiate(format!("{err:#}")))
}

/// What a failed export call means: the deadline when it had passed, else a trap.
fn call_error(err: &wasmtime::Error, started: Instant, deadline: Duration) -> CallError {
    if started.elapsed() >= deadline {
        CallError::Deadline(deadline)
    } else {
        CallError::Trap(trap_text(err))
    }
}

/// Yield to tokio at every epoch tick so a spinning guest never starves other tasks, and
/// trap once `deadline` has passed from now. Returns the call's start.
fn arm_deadline(store: &mut Store<CallState>, deadline: Duration) -> Instant {
    let started = Instant::now();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        if started.elapsed() >= deadline {
            Ok(UpdateDeadline::Interrupt)
        } else {
            Ok(UpdateDeadline::Yield(1))
        }
    });
    started
}

/// Which export a call runs.
enum Export<'w> {
    Manifest,
    Handle(&'w Webhook),
    CheckSettings,
}

/// What it returned.
enum Returned {
    Manifest(Manifest),
    Handle(Result<Vec<Delivery>, Failure>),
    CheckSettings(Result<(), String>),
}

fn empty_manifest() -> Manifest {
    Manifest {
        name: String::new(),
        version: String::new(),
        description: String::new(),
        default_scheme: String::new(),
        settings: Vec::new(),
    }
}

fn first_line(err: &wasmtime::Error) -> String {
    format!("{err:#}")
        .lines()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// What went wrong in the guest, in one line: the trap code (or host error) at the root of
/// the chain, without wasmtime's multi-line backtrace.
fn trap_text(err: &wasmtime::Error) -> String {
    let root = err.root_cause().to_string();
    let root = root.lines().next().unwrap_or_default().trim().to_string();
    match err.downcast_ref::<wasmtime::Trap>() {
        Some(trap) if !root.contains(&trap.to_string()) => format!("{trap}: {root}"),
        _ => root,
    }
}

/// Advance the engine's epoch every [`EPOCH_TICK`] until the engine is dropped.
fn spawn_epoch_ticker(engine: &Engine) {
    let weak = engine.weak();
    std::thread::Builder::new()
        .name("switchyard-epoch".into())
        .spawn(move || {
            while let Some(engine) = weak.upgrade() {
                engine.increment_epoch();
                drop(engine);
                std::thread::sleep(EPOCH_TICK);
            }
        })
        .expect("spawning the epoch thread");
}

#[cfg(test)]
mod timing {
    use super::*;

    /// Where the time of one connector call goes (run with
    /// `cargo test --release -p switchyard --lib phases -- --ignored --nocapture`).
    #[tokio::test]
    #[ignore]
    async fn phases() {
        let bytes = std::fs::read(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../dist/plugins/stripe.wasm"
        ))
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let storage: Arc<dyn crate::store::Storage> =
            Arc::new(crate::store::sled::SledStore::open(dir.path(), false).unwrap());
        let grants = Arc::new(Grants {
            connector: "stripe".into(),
            settings: Default::default(),
            secrets: Vec::new(),
            allowed_hosts: Default::default(),
            kv: crate::store::Kv::new(storage, "stripe"),
            http: reqwest::Client::new(),
            fetch_timeout: Duration::from_secs(1),
        });
        let runtime = Runtime::new(Limits::default(), None).unwrap();
        let plugin = runtime.load(&bytes, grants.clone()).await.unwrap();
        let webhook = Webhook {
            id: "x".into(),
            connector: "stripe".into(),
            method: "POST".into(),
            path: "/hooks/stripe".into(),
            query: String::new(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: br#"{"id":"evt_1","object":"event","type":"invoice.paid","data":{"object":{"id":"in_1","object":"invoice"}}}"#.to_vec(),
            received_at: 0,
            attempt: 1,
        };
        let n = 2000;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(CallState::new(
                grants.clone(),
                StoreLimitsBuilder::new().build(),
            ));
        }
        let state = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            let mut store = Store::new(
                &runtime.engine,
                CallState::new(grants.clone(), StoreLimitsBuilder::new().build()),
            );
            store.set_epoch_deadline(1000);
            std::hint::black_box(plugin.pre.instantiate(&mut store).await.unwrap());
        }
        let inst = t.elapsed() / n;
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(
                runtime
                    .dedupe_key(&plugin, grants.clone(), &webhook)
                    .await
                    .unwrap(),
            );
        }
        let dedupe = t.elapsed() / n;
        eprintln!(
            "CallState::new {state:?}; store + instantiate {inst:?}; full dedupe_key call {dedupe:?}"
        );
        let dir = tempfile::tempdir().unwrap();
        let store = crate::store::sled::SledStore::open(dir.path(), false).unwrap();
        let body = vec![b'{'; 1200];
        let t = Instant::now();
        for i in 0..n {
            let id = ulid::Ulid::new().to_string();
            let mut record = crate::store::EventRecord::received(id, "stripe".into(), 1, "stripe");
            record.dedupe_key = Some(format!("evt_{i}"));
            futures::executor::block_on(crate::store::EventLog::insert_event(
                &store,
                crate::store::NewEvent {
                    record,
                    request: crate::store::StoredRequest {
                        method: "POST".into(),
                        path: "/hooks/stripe".into(),
                        query: String::new(),
                        headers: vec![("content-type".into(), "application/json".into()); 8],
                        body: body.clone().into(),
                    },
                    dedupe: Some((format!("evt_{i}"), 1000)),
                },
            ))
            .unwrap();
        }
        eprintln!("insert_event {:?}", t.elapsed() / n);
        let db = sled::Config::new()
            .path(dir.path().join("raw"))
            .open()
            .unwrap();
        let tree = db.open_tree("t").unwrap();
        let small = db.open_tree("s").unwrap();
        let value = vec![7u8; 1500];
        let t = Instant::now();
        for _ in 0..n {
            tree.insert(ulid::Ulid::new().to_string().as_bytes(), value.as_slice())
                .unwrap();
        }
        eprintln!("raw sled insert 1500 B {:?}", t.elapsed() / n);
        let t = Instant::now();
        for _ in 0..n {
            small
                .insert(ulid::Ulid::new().to_string().as_bytes(), &[])
                .unwrap();
        }
        eprintln!("raw sled insert 0 B {:?}", t.elapsed() / n);
        let request = crate::store::StoredRequest {
            method: "POST".into(),
            path: "/hooks/stripe".into(),
            query: String::new(),
            headers: vec![("content-type".into(), "application/json".into()); 8],
            body: serde_json::to_vec(&serde_json::json!({"a": "b".repeat(1000), "c": {"d": 1}}))
                .unwrap()
                .into(),
        };
        let t = Instant::now();
        for _ in 0..n {
            std::hint::black_box(serde_json::to_vec(&request).unwrap());
        }
        eprintln!("json request {:?}", t.elapsed() / n);
    }
}
