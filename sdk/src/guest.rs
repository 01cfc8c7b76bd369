//! The `wasm32` side: the WIT imports behind [`HostApi`], and the conversions between the
//! generated types and the SDK's that [`export!`](crate::export) calls into.

use crate::bindings as wit;
use crate::bindings::switchyard::connector::{clock, http, kv, log, settings};
use crate::ctx::HostApi;
use crate::{
    Connector, Ctx, Delivery, Failure, FetchError, Level, Manifest, Request, Response, Webhook,
};

/// The real host, reached through the component's imports.
struct WasmHost;

impl HostApi for WasmHost {
    fn setting(&self, key: &str) -> Option<String> {
        settings::get(key)
    }

    fn fetch(&self, request: &Request) -> Result<Response, FetchError> {
        let request = http::Request {
            method: request.method.clone(),
            url: request.url.clone(),
            headers: request.headers.clone(),
            body: request.body.clone(),
        };
        match http::fetch(&request) {
            Ok(r) => Ok(Response {
                status: r.status,
                headers: r.headers,
                body: r.body,
            }),
            Err(http::Error::Denied(m)) => Err(FetchError::Denied(m)),
            Err(http::Error::Timeout) => Err(FetchError::Timeout),
            Err(http::Error::Transport(m)) => Err(FetchError::Transport(m)),
        }
    }

    fn kv_get(&self, key: &str) -> Option<Vec<u8>> {
        kv::get(key)
    }

    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), String> {
        kv::set(key, value)
    }

    fn kv_delete(&self, key: &str) {
        kv::delete(key);
    }

    fn log(&self, level: Level, message: &str) {
        let level = match level {
            Level::Trace => log::Level::Trace,
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        log::emit(level, message);
    }

    fn now(&self) -> u64 {
        clock::now()
    }
}

fn webhook_from_wit(w: wit::Webhook) -> Webhook {
    Webhook {
        id: w.id,
        connector: w.connector,
        method: w.method,
        path: w.path,
        query: w.query,
        headers: w.headers,
        body: w.body,
        received_at: w.received_at,
        attempt: w.attempt,
    }
}

/// `export!`'s `manifest`.
pub fn manifest<C: Connector>() -> wit::Manifest {
    let Manifest {
        name,
        version,
        description,
        default_scheme,
        settings,
    } = C::manifest();
    wit::Manifest {
        name,
        version,
        description,
        default_scheme,
        settings: settings
            .into_iter()
            .map(|s| wit::switchyard::connector::types::SettingInfo {
                name: s.name,
                description: s.description,
                required: s.required,
            })
            .collect(),
    }
}

/// `export!`'s `dedupe-key`.
pub fn dedupe_key<C: Connector>(webhook: wit::Webhook) -> Option<String> {
    C::dedupe_key(&webhook_from_wit(webhook))
}

/// `export!`'s `check-settings`.
pub fn check_settings<C: Connector>() -> Result<(), String> {
    C::check_settings(&Ctx::new(&WasmHost))
}

/// `export!`'s `handle`.
pub fn handle<C: Connector>(webhook: wit::Webhook) -> Result<Vec<wit::Delivery>, wit::Failure> {
    let ctx = Ctx::new(&WasmHost);
    match C::handle(&ctx, &webhook_from_wit(webhook)) {
        Ok(deliveries) => Ok(deliveries
            .into_iter()
            .map(|d: Delivery| wit::Delivery {
                method: d.method,
                url: d.url,
                headers: d.headers,
                body: d.body,
            })
            .collect()),
        Err(Failure::Retry(m)) => Err(wit::Failure::Retry(m)),
        Err(Failure::Reject(m)) => Err(wit::Failure::Reject(m)),
    }
}
