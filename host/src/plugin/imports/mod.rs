//! The capabilities a connector gets: one file per WIT import, each implementing the
//! generated `Host` trait on [`CallState`], the data of one call's wasmtime `Store`.
//!
//! A connector reaches nothing else. A component built by Rust for `wasm32-wasip2` imports
//! WASI, so the host links WASI with nothing granted: no preopened directories,
//! environment, arguments or stdio; TCP, UDP and name lookups off (and no socket address
//! passes the check even so); WASI's wall clock says 1970 and its monotonic clock stands
//! still, so the time is `clock.now`, which the host controls. Only WASI's random numbers
//! are real (Rust's `HashMap` seeds itself from them). `wasi:http` is not linked: a
//! component that imports it does not load.

mod clock;
mod http;
mod kv;
mod log;
mod settings;

pub use self::http::{AllowedHosts, FetchRecord, redact_request};
pub use self::log::LogLine;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, StoreLimits};
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::store::Kv;

/// What the operator granted one connector: shared by every call of that connector.
pub struct Grants {
    /// The connector id (kv namespace, log context).
    pub connector: String,
    /// `[connector.settings]`, resolved to strings.
    pub settings: BTreeMap<String, String>,
    /// Values of the settings that are secrets, masked in what the call leaves in the
    /// event log (log lines, fetches).
    pub secrets: Vec<crate::secret::Secret>,
    /// Origins `http.fetch` may reach (and deliveries may target).
    pub allowed_hosts: AllowedHosts,
    /// This connector's `kv`, and no other part of the store.
    pub kv: Kv,
    /// Shared outbound client (connection pool).
    pub http: reqwest::Client,
    /// Per-request timeout for `http.fetch`.
    pub fetch_timeout: Duration,
}

/// Limits on what one call may keep in host memory through the imports.
pub const MAX_LOG_LINES: usize = 200;
pub const MAX_LOG_LINE_BYTES: usize = 4 * 1024;
pub const MAX_FETCHES: usize = 32;
pub const MAX_FETCH_BODY_BYTES: usize = 4 * 1024 * 1024;
pub const MAX_KV_KEY_BYTES: usize = 512;
pub const MAX_KV_VALUE_BYTES: usize = 64 * 1024;
/// Keys one connector may hold (a cursor, a token, a few thousand ids; not a database).
pub const MAX_KV_KEYS: usize = 10_000;

/// The data of one call's `Store`: a fresh one per event.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: Limiter,
    pub grants: Arc<Grants>,
    /// `log.emit` lines, kept with the attempt record.
    pub logs: Vec<LogLine>,
    /// `http.fetch` calls, kept with the attempt record.
    pub fetches: Vec<FetchRecord>,
}

impl CallState {
    pub fn new(grants: Arc<Grants>, limits: StoreLimits) -> Self {
        CallState {
            // Nothing inherited: no env, args, preopens, stdio, network or time.
            wasi: WasiCtx::builder()
                .allow_tcp(false)
                .allow_udp(false)
                .allow_ip_name_lookup(false)
                .wall_clock(StoppedClock)
                .monotonic_clock(StoppedClock)
                .build(),
            table: ResourceTable::new(),
            limits: Limiter {
                limits,
                memory_bytes: 0,
            },
            grants,
            logs: Vec::new(),
            fetches: Vec::new(),
        }
    }
}

/// The store's limits, counting the linear memory the instance holds as it grows (the
/// figure `plugins.max_memory_bytes` is held against, kept in each attempt).
pub(crate) struct Limiter {
    limits: StoreLimits,
    /// The sum of the instance's memories' sizes: each grow adds what it added.
    pub memory_bytes: usize,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = self.limits.memory_growing(current, desired, maximum)?;
        if allowed {
            self.memory_bytes += desired.saturating_sub(current);
        }
        Ok(allowed)
    }

    fn memory_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.memory_grow_failed(error)
    }

    fn table_growing(
        &mut self,
        current: usize,
        desired: usize,
        maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        self.limits.table_growing(current, desired, maximum)
    }

    fn table_grow_failed(&mut self, error: wasmtime::Error) -> wasmtime::Result<()> {
        self.limits.table_grow_failed(error)
    }

    fn instances(&self) -> usize {
        self.limits.instances()
    }

    fn tables(&self) -> usize {
        self.limits.tables()
    }

    fn memories(&self) -> usize {
        self.limits.memories()
    }
}

/// WASI's clocks as a connector sees them: the epoch, standing still.
struct StoppedClock;

impl wasmtime_wasi::HostWallClock for StoppedClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl wasmtime_wasi::HostMonotonicClock for StoppedClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

impl WasiView for CallState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl crate::plugin::bindings::current::switchyard::connector::types::Host for CallState {}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plugin::bindings::current::switchyard::connector::{http, kv, log};

    fn state() -> CallState {
        state_on(Arc::new(crate::store::memory::MemoryStore::new()))
    }

    /// A call of connector `c` whose kv lives in `store`.
    fn state_on(store: Arc<crate::store::memory::MemoryStore>) -> CallState {
        let grants = Arc::new(Grants {
            connector: "c".into(),
            settings: BTreeMap::new(),
            secrets: Vec::new(),
            allowed_hosts: AllowedHosts::default(),
            kv: Kv::new(store, "c"),
            http: reqwest::Client::new(),
            fetch_timeout: Duration::from_secs(1),
        });
        CallState::new(grants, wasmtime::StoreLimitsBuilder::new().build())
    }

    #[tokio::test]
    async fn log_lines_are_bounded_in_count_and_size() {
        let mut state = state();
        log::Host::emit(&mut state, log::Level::Info, "é".repeat(MAX_LOG_LINE_BYTES)).await;
        assert!(state.logs[0].message.len() <= MAX_LOG_LINE_BYTES + '…'.len_utf8());
        assert!(state.logs[0].message.ends_with('…'));
        for i in 0..1_000 {
            log::Host::emit(&mut state, log::Level::Debug, format!("line {i}")).await;
        }
        assert_eq!(state.logs.len(), MAX_LOG_LINES + 1);
        assert!(
            state.logs[MAX_LOG_LINES]
                .message
                .contains("further lines dropped")
        );
    }

    #[tokio::test]
    async fn fetches_are_bounded_per_call() {
        let mut state = state();
        let request = || http::Request {
            method: "GET".into(),
            url: "http://127.0.0.1:9/".into(),
            headers: Vec::new(),
            body: Vec::new(),
        };
        for _ in 0..MAX_FETCHES {
            let refused = http::Host::fetch(&mut state, request()).await;
            assert!(
                matches!(refused, Err(http::Error::Denied(why)) if why.contains("allowed_hosts"))
            );
        }
        let over = http::Host::fetch(&mut state, request()).await;
        assert!(
            matches!(over, Err(http::Error::Denied(why)) if why.contains("fetches in one call"))
        );
        assert_eq!(state.fetches.len(), MAX_FETCHES);

        let mut state = super::tests::state();
        let big = http::Request {
            body: vec![0; MAX_FETCH_BODY_BYTES + 1],
            ..request()
        };
        let refused = http::Host::fetch(&mut state, big).await;
        assert!(
            matches!(refused, Err(http::Error::Denied(why)) if why.contains("request body larger"))
        );
    }

    #[tokio::test]
    async fn kv_keys_and_values_are_bounded() {
        let mut state = state();
        let long_key = "k".repeat(MAX_KV_KEY_BYTES + 1);
        assert!(
            kv::Host::set(&mut state, long_key, b"v".to_vec())
                .await
                .is_err()
        );
        let big = vec![0; MAX_KV_VALUE_BYTES + 1];
        assert!(kv::Host::set(&mut state, "k".into(), big).await.is_err());
        kv::Host::set(&mut state, "k".into(), b"v".to_vec())
            .await
            .unwrap();
        assert_eq!(
            kv::Host::get(&mut state, "k".into()).await,
            Some(b"v".to_vec())
        );
    }

    #[tokio::test]
    async fn kv_keys_per_connector_are_bounded() {
        use crate::store::ConnectorKv as _;
        let store = Arc::new(crate::store::memory::MemoryStore::new());
        let mut state = state_on(store.clone());
        for i in 0..MAX_KV_KEYS {
            kv::Host::set(&mut state, format!("k{i}"), Vec::new())
                .await
                .unwrap();
        }
        let over = kv::Host::set(&mut state, "one more".into(), Vec::new()).await;
        assert!(
            matches!(over, Err(why) if why.contains("keys")),
            "a new key past the bound"
        );
        // Existing keys still change, and a deleted key makes room.
        kv::Host::set(&mut state, "k0".into(), b"new".to_vec())
            .await
            .unwrap();
        kv::Host::delete(&mut state, "k1".into()).await;
        kv::Host::set(&mut state, "one more".into(), Vec::new())
            .await
            .unwrap();
        // They are all in `c`'s namespace: another connector's is untouched.
        assert_eq!(
            store.kv_count("c", MAX_KV_KEYS + 1).await.unwrap(),
            MAX_KV_KEYS
        );
        assert_eq!(store.kv_count("other", 10).await.unwrap(), 0);
    }
}
