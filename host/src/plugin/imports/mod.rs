//! The capabilities a connector gets: one file per WIT import, each implementing the
//! generated `Host` trait on [`CallState`], the data of one call's wasmtime `Store`.
//!
//! A connector reaches nothing else: no filesystem, sockets, environment or clocks beyond
//! what WASI's empty context gives (a component built by Rust for `wasm32-wasip2` imports
//! WASI, so the host links it with nothing granted).

mod clock;
mod http;
mod kv;
mod log;
mod settings;

pub use self::http::{AllowedHosts, FetchRecord};
pub use self::log::LogLine;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::StoreLimits;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::store::Storage;

/// What the operator granted one connector: shared by every call of that connector.
pub struct Grants {
    /// The connector id (kv namespace, log context).
    pub connector: String,
    /// `[connector.settings]`, resolved to strings.
    pub settings: BTreeMap<String, String>,
    /// Origins `http.fetch` may reach (and deliveries may target).
    pub allowed_hosts: AllowedHosts,
    /// Where `kv` lives.
    pub storage: Arc<dyn Storage>,
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

/// The data of one call's `Store`: a fresh one per event.
pub struct CallState {
    wasi: WasiCtx,
    table: ResourceTable,
    pub(crate) limits: StoreLimits,
    pub grants: Arc<Grants>,
    /// `log.emit` lines, kept with the attempt record.
    pub logs: Vec<LogLine>,
    /// `http.fetch` calls, kept with the attempt record.
    pub fetches: Vec<FetchRecord>,
}

impl CallState {
    pub fn new(grants: Arc<Grants>, limits: StoreLimits) -> Self {
        CallState {
            // Nothing inherited: no env, args, preopens, stdio or network.
            wasi: WasiCtx::builder().build(),
            table: ResourceTable::new(),
            limits,
            grants,
            logs: Vec::new(),
            fetches: Vec::new(),
        }
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

impl crate::plugin::bindings::v0_1_0::switchyard::connector::types::Host for CallState {}
