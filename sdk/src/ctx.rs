//! The capabilities the host grants a connector during `handle`.

use std::fmt;

use serde::de::DeserializeOwned;

use crate::{Failure, FetchError, Request, Response};

/// What a host provides: the WIT imports on `wasm32`, [`TestHost`](crate::TestHost) in
/// native tests. Object-safe so [`Ctx`] does not need a type parameter.
pub(crate) trait HostApi {
    fn setting(&self, key: &str) -> Option<String>;
    fn fetch(&self, request: &Request) -> Result<Response, FetchError>;
    fn kv_get(&self, key: &str) -> Option<Vec<u8>>;
    fn kv_set(&self, key: &str, value: &[u8]) -> Result<(), String>;
    fn kv_delete(&self, key: &str);
    fn log(&self, level: Level, message: &str);
    fn now(&self) -> u64;
}

/// The capabilities of one `handle` call: settings, outbound fetch, key-value state,
/// logging and the clock.
pub struct Ctx<'h> {
    host: &'h dyn HostApi,
}

impl<'h> Ctx<'h> {
    pub(crate) fn new(host: &'h dyn HostApi) -> Self {
        Ctx { host }
    }

    /// The operator's `[connector.settings]` value for `key`. Strings come as-is (with
    /// `env:`/`file:` references resolved); other TOML values as JSON text (`true`,
    /// `["a","b"]`).
    pub fn setting(&self, key: &str) -> Option<String> {
        self.host.setting(key)
    }

    /// The setting `key`, or `default` when it is not set.
    pub fn setting_or(&self, key: &str, default: impl Into<String>) -> String {
        self.setting(key).unwrap_or_else(|| default.into())
    }

    /// The setting `key`; the event is rejected (naming the setting) when it is missing or
    /// empty.
    pub fn require_setting(&self, key: &str) -> Result<String, Failure> {
        match self.setting(key) {
            None => Err(Failure::reject(format!("setting `{key}` is not set"))),
            Some(v) if v.trim().is_empty() => {
                Err(Failure::reject(format!("setting `{key}` is empty")))
            }
            Some(v) => Ok(v),
        }
    }

    /// A boolean setting: `true`/`false` (as TOML booleans arrive), also `1`/`0`,
    /// `yes`/`no`, `on`/`off`; absent is `false`. Anything else is rejected.
    pub fn setting_bool(&self, key: &str) -> Result<bool, Failure> {
        let Some(value) = self.setting(key) else {
            return Ok(false);
        };
        match value.trim().to_ascii_lowercase().as_str() {
            "true" | "1" | "yes" | "on" => Ok(true),
            "false" | "0" | "no" | "off" | "" => Ok(false),
            _ => Err(Failure::reject(format!(
                "setting `{key}` must be true or false, got {value:?}"
            ))),
        }
    }

    /// A setting holding JSON (how non-string TOML values arrive): `None` when absent, a
    /// rejection naming the setting when it does not parse into `T`.
    pub fn setting_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, Failure> {
        self.setting(key)
            .map(|raw| {
                serde_json::from_str(&raw)
                    .map_err(|e| Failure::reject(format!("setting `{key}` is not valid: {e}")))
            })
            .transpose()
    }

    /// Performs `request` now and waits for the answer. Only the connector's
    /// `allowed_hosts` can be reached; the host logs every call. `?` turns the error into a
    /// [`Failure`] (denied → reject, timeout/transport → retry).
    pub fn fetch(&self, request: Request) -> Result<Response, FetchError> {
        self.host.fetch(&request)
    }

    /// The connector's key-value state, which survives across events and restarts.
    pub fn kv(&self) -> Kv<'h> {
        Kv { host: self.host }
    }

    /// Writes a line to the event's attempt record.
    pub fn log(&self, level: Level, message: impl AsRef<str>) {
        self.host.log(level, message.as_ref());
    }

    /// Logs at [`Level::Trace`].
    pub fn trace(&self, message: impl AsRef<str>) {
        self.log(Level::Trace, message);
    }

    /// Logs at [`Level::Debug`].
    pub fn debug(&self, message: impl AsRef<str>) {
        self.log(Level::Debug, message);
    }

    /// Logs at [`Level::Info`].
    pub fn info(&self, message: impl AsRef<str>) {
        self.log(Level::Info, message);
    }

    /// Logs at [`Level::Warn`].
    pub fn warn(&self, message: impl AsRef<str>) {
        self.log(Level::Warn, message);
    }

    /// Logs at [`Level::Error`].
    pub fn error(&self, message: impl AsRef<str>) {
        self.log(Level::Error, message);
    }

    /// The host's wall clock, unix milliseconds.
    pub fn now(&self) -> u64 {
        self.host.now()
    }
}

/// The connector's key-value state: per connector id, kept across events and restarts.
/// Keys are at most 512 bytes and values at most 64 KiB (on the host and in
/// [`TestHost`](crate::TestHost)).
pub struct Kv<'h> {
    host: &'h dyn HostApi,
}

impl Kv<'_> {
    /// The value stored under `key`.
    pub fn get(&self, key: &str) -> Option<Vec<u8>> {
        self.host.kv_get(key)
    }

    /// Stores `value` under `key`; fails when either is larger than the host allows.
    pub fn set(&self, key: &str, value: impl AsRef<[u8]>) -> Result<(), KvError> {
        self.host.kv_set(key, value.as_ref()).map_err(KvError)
    }

    /// Removes `key` (nothing happens when it is absent).
    pub fn delete(&self, key: &str) {
        self.host.kv_delete(key);
    }
}

/// The host refused a [`Kv::set`] (the key or value is too large).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KvError(pub String);

impl fmt::Display for KvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "kv set failed: {}", self.0)
    }
}

impl std::error::Error for KvError {}

/// A refused write will be refused again: the event is rejected.
impl From<KvError> for Failure {
    fn from(error: KvError) -> Self {
        Failure::Reject(error.to_string())
    }
}

/// The level of a log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Very detailed tracing.
    Trace,
    /// Debugging detail.
    Debug,
    /// Normal progress.
    Info,
    /// Something unexpected that did not stop the event.
    Warn,
    /// Something that failed.
    Error,
}

impl fmt::Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        })
    }
}
