//! The operator's configuration: `switchyard.toml`, layered and checked before anything starts.
//!
//! [`Config::load`] builds a config in four steps (svix's `cfg.rs` does the same):
//!
//! 1. the built-in defaults, [`DEFAULT_CONFIG_TOML`] (`host/config.default.toml`, compiled in;
//!    it doubles as the reference of every key);
//! 2. the operator's file, which only needs the keys it changes;
//! 3. environment variables `SWITCHYARD_<SECTION>_<KEY>` for the sections `server`, `storage`,
//!    `plugins` and `retry` (`SWITCHYARD_SERVER_LISTEN`, `SWITCHYARD_RETRY_MAX_ATTEMPTS`, …);
//! 4. secret references resolved (`"env:VAR"`, `"file:PATH"`), per-connector retry filled in
//!    from `[retry]`, then [`Config::validate`].
//!
//! Every [`ConfigError`] names the key it is about (`server.listen`, `connector[0]
//! (stripe).secret`) and never contains a secret value.
//!
//! Relative `storage.path`, `plugins.dir` and `plugins.cache_dir` are left relative, so they are
//! relative to the working directory the host runs in (what `make run` relies on). Only
//! `file:` references are relative to the config file's folder.

mod load;
mod validate;
pub use validate::{DESTINATION_PREFIX, destination_url};

#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

/// The built-in defaults, loaded before the operator's file. Every key, commented.
pub const DEFAULT_CONFIG_TOML: &str = include_str!("../../config.default.toml");

/// The shortest dedupe window a config may set (`storage.dedupe_window`); the sled engine's
/// recovery relies on it too (`store/sled/ingest.rs`).
pub const MIN_DEDUPE_WINDOW: Duration = Duration::from_secs(60);

/// A signature scheme as a connector's `scheme` (and `switchyard sign --scheme`) names it:
/// parsed once, when the config loads, so the rest of the host matches on the name instead
/// of comparing strings. [`SchemeName::scheme`] gives the [`Scheme`] with its parameters.
///
/// [`Scheme`]: crate::verify::Scheme
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemeName {
    Stripe,
    StandardWebhooks,
    Github,
    HmacSha256,
    Mandrill,
    Token,
    None,
}

/// A name that is none of [`SchemeName::ALL`]; its text lists the known ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown scheme `{0}`; known: {known}", known = SchemeName::known())]
pub struct UnknownScheme(pub String);

/// What a parameterised scheme lacks to give a [`Scheme`](crate::verify::Scheme).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingParams {
    /// `hmac-sha256` without its header/encoding/prefix.
    Hmac,
    /// `mandrill` without the public URL it signs.
    PublicUrl,
}

impl SchemeName {
    /// Every scheme the host implements, in the order error messages list them.
    pub const ALL: [SchemeName; 7] = [
        SchemeName::Stripe,
        SchemeName::StandardWebhooks,
        SchemeName::Github,
        SchemeName::HmacSha256,
        SchemeName::Mandrill,
        SchemeName::Token,
        SchemeName::None,
    ];

    /// The name as written in the config, e.g. `"standard-webhooks"`.
    pub fn as_str(self) -> &'static str {
        match self {
            SchemeName::Stripe => "stripe",
            SchemeName::StandardWebhooks => "standard-webhooks",
            SchemeName::Github => "github",
            SchemeName::HmacSha256 => "hmac-sha256",
            SchemeName::Mandrill => "mandrill",
            SchemeName::Token => "token",
            SchemeName::None => "none",
        }
    }

    /// The scheme this names, with the parameters the parameterised ones need (the others
    /// ignore them).
    pub fn scheme(
        self,
        hmac: Option<crate::verify::HmacParams>,
        public_url: Option<String>,
    ) -> Result<crate::verify::Scheme, MissingParams> {
        use crate::verify::Scheme;
        Ok(match self {
            SchemeName::Stripe => Scheme::Stripe,
            SchemeName::StandardWebhooks => Scheme::StandardWebhooks,
            SchemeName::Github => Scheme::Github,
            SchemeName::HmacSha256 => {
                let crate::verify::HmacParams {
                    header,
                    encoding,
                    prefix,
                } = hmac.ok_or(MissingParams::Hmac)?;
                Scheme::HmacSha256 {
                    header,
                    encoding,
                    prefix,
                }
            }
            SchemeName::Mandrill => Scheme::Mandrill {
                public_url: public_url.ok_or(MissingParams::PublicUrl)?,
            },
            SchemeName::Token => Scheme::Token,
            SchemeName::None => Scheme::None,
        })
    }

    /// `` `stripe`, `standard-webhooks`, … ``: the list an unknown name's error gives.
    fn known() -> String {
        SchemeName::ALL
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl std::str::FromStr for SchemeName {
    type Err = UnknownScheme;

    fn from_str(name: &str) -> Result<Self, UnknownScheme> {
        SchemeName::ALL
            .into_iter()
            .find(|scheme| scheme.as_str() == name)
            .ok_or_else(|| UnknownScheme(name.to_owned()))
    }
}

impl fmt::Display for SchemeName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// From the name as a string; an unknown one fails with [`UnknownScheme`]'s text, which
/// the config's error names the key in front of.
impl<'de> Deserialize<'de> for SchemeName {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Resolve a secret reference given outside a config file (e.g. `switchyard sign
/// --secret env:VAR`) exactly as the config does: `"env:VAR"`, `"file:PATH"` (relative to
/// the working directory) or a literal. `key` names the value in errors.
pub fn resolve_reference(key: &str, raw: &str) -> Result<String, ConfigError> {
    load::resolve_one(key, raw)
}

/// The whole configuration, built by [`Config::load`].
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub plugins: PluginsConfig,
    /// Defaults for every connector; each connector's effective values are in its own `retry`.
    pub retry: RetryConfig,
    pub telemetry: TelemetryConfig,
    /// The `[[connector]]` tables, in file order.
    pub connectors: Vec<ConnectorConfig>,
    /// The `[[destination]]` tables, in file order: where deliveries to `destination:ID` go.
    pub destinations: Vec<DestinationConfig>,
    /// `[alerts]`: where the host reports a destination it disabled.
    pub alerts: AlertsConfig,
    /// The file this was loaded from (`None` for a config built from text): reloads and the
    /// config watcher read it again.
    pub source: Option<PathBuf>,
}

/// `server.log_format`: text for people, JSON (one object per line) for log shippers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// `[telemetry]`: traces over OTLP, off unless an endpoint is set.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TelemetryConfig {
    /// Where spans go: an OTLP/HTTP collector's traces URL (`http://host:4318/v1/traces`).
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the spans.
    pub service_name: String,
}

/// `[server]`: the HTTP listener (ingress and admin API) and the process.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    /// Bearer token for the admin API (`/v1`).
    pub admin_token: Option<Secret>,
    /// A second bearer token that may only read (`GET`): for dashboards that must not
    /// replay, pause or reload.
    pub admin_read_token: Option<Secret>,
    /// Largest accepted webhook body; larger ones get 413.
    pub max_body_bytes: usize,
    /// Dispatch workers; 0 means eight per CPU (see [`ServerConfig::worker_count`]).
    pub workers: usize,
    /// How long shutdown waits for in-flight work.
    pub shutdown_timeout: Duration,
    /// Admin API requests per client address per minute; past it, 429.
    pub admin_rate_limit: u32,
    /// Largest request head (request line and headers); larger ones get 431.
    pub max_header_bytes: usize,
    /// Most header lines in a request; more get 431.
    pub max_headers: usize,
    /// How long a client may take to send a request head, counted from the connection's
    /// start or its previous answer (so it also closes idle keep-alive connections).
    pub header_timeout: Duration,
    /// How long a webhook's body may take to arrive after its head; then 408.
    pub body_timeout: Duration,
    /// Open connections at most; past it a new one is answered 503 and closed.
    pub max_connections: usize,
    /// How the host writes its log on stderr.
    pub log_format: LogFormat,
}

/// `storage.backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    /// Embedded, single node, files under `storage.path`.
    Sled,
    /// NATS JetStream at `storage.nats_url`, for a cluster.
    Nats,
}

/// `[storage]`: the inbox, outbox and event log.
#[derive(Debug, Clone, PartialEq)]
pub struct StorageConfig {
    pub backend: Backend,
    /// Data folder for `sled`; relative to the working directory.
    pub path: PathBuf,
    /// Days the event log keeps each event before the cleaner removes it.
    pub retention_days: u32,
    /// `storage.nats_url`: the NATS servers (one or several); required when `backend` is
    /// `nats`.
    pub nats_urls: Vec<String>,
    /// Prefix of every stream, bucket and subject name, so that two deployments can share
    /// a cluster.
    pub nats_prefix: String,
    /// JetStream replicas of each stream and bucket: 1, or 3 for a quorum write.
    pub replicas: usize,
    /// How the host authenticates to NATS.
    pub nats_auth: NatsAuth,
    /// How long a dedupe key is remembered.
    pub dedupe_window: Duration,
    /// Make each event durable (fsync) before answering 200. `false` is unsafe: for
    /// benchmarks only, a crash can lose acknowledged webhooks.
    pub durable: bool,
}

/// How the host authenticates to NATS (`storage.nats_token`, `nats_user`/`nats_password`,
/// `nats_creds`; at most one of them).
#[derive(Debug, Clone, PartialEq, Default)]
pub enum NatsAuth {
    #[default]
    None,
    Token(Secret),
    UserPassword {
        user: String,
        password: Secret,
    },
    /// The content of a `.creds` file (a JWT and an NKey seed).
    Creds(Secret),
}

impl NatsAuth {
    /// What kind it is, for summaries (never the secret).
    pub fn kind(&self) -> &'static str {
        match self {
            NatsAuth::None => "no credentials",
            NatsAuth::Token(_) => "a token",
            NatsAuth::UserPassword { .. } => "a user and password",
            NatsAuth::Creds(_) => "a creds file",
        }
    }
}

/// `[plugins]`: where connectors come from and what each call may use.
#[derive(Debug, Clone, PartialEq)]
pub struct PluginsConfig {
    /// Folder of `.wasm` connectors; relative to the working directory.
    pub dir: PathBuf,
    /// Load new and replaced `.wasm` files without a restart.
    pub watch: bool,
    /// Wall-clock limit for one connector call.
    pub deadline: Duration,
    /// Linear-memory cap for one connector instance.
    pub max_memory_bytes: u64,
    /// Most deliveries one `handle` may return.
    pub max_deliveries: usize,
    /// Largest body of one delivery a `handle` returns.
    pub max_delivery_bytes: usize,
    /// Largest result of one `handle`: every delivery's URL, headers and body together.
    pub max_result_bytes: usize,
    /// Cache of compiled components; `None`: compile on every load.
    pub cache_dir: Option<PathBuf>,
}

/// `[retry]` and `[connector.retry]`: how deliveries (and connector `retry` failures) are retried.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryConfig {
    /// Attempts in total, the first one included.
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Fraction of each backoff that is randomised, 0 to 1.
    pub jitter: f64,
    /// Limit for one outbound request.
    pub timeout: Duration,
}

/// `hmac.encoding`: how the signature header encodes the MAC (also `switchyard sign
/// --encoding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum HmacEncoding {
    #[default]
    Hex,
    Base64,
}

impl HmacEncoding {
    /// `"hex"` or `"base64"`, as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            HmacEncoding::Hex => "hex",
            HmacEncoding::Base64 => "base64",
        }
    }
}

impl From<HmacEncoding> for crate::verify::Encoding {
    fn from(encoding: HmacEncoding) -> Self {
        match encoding {
            HmacEncoding::Hex => crate::verify::Encoding::Hex,
            HmacEncoding::Base64 => crate::verify::Encoding::Base64,
        }
    }
}

impl fmt::Display for HmacEncoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Backend {
    /// `"sled"` or `"nats"`, as written in the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Sled => "sled",
            Backend::Nats => "nats",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `[connector.hmac]`: parameters of the generic `hmac-sha256` scheme.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HmacConfig {
    /// Header carrying the signature, e.g. `X-Signature`.
    pub header: String,
    #[serde(default)]
    pub encoding: HmacEncoding,
    /// Text before the encoded MAC in the header, e.g. `sha256=`.
    #[serde(default)]
    pub prefix: String,
}

/// One `[[connector]]`: a route `POST /hooks/{id}` served by a plugin.
#[derive(Clone, PartialEq)]
pub struct ConnectorConfig {
    pub id: String,
    /// File name in `plugins.dir`, e.g. `stripe.wasm`.
    pub plugin: String,
    /// `false`: the route answers 404 and nothing is stored.
    pub enabled: bool,
    /// `true`: accept and store, dispatch nothing until resumed.
    pub paused: bool,
    /// Signing secrets; any of them may match (rotation). Empty when not configured.
    pub secret: Vec<Secret>,
    /// Overrides the scheme the plugin declares.
    pub scheme: Option<SchemeName>,
    /// Required when `scheme` is `hmac-sha256`.
    pub hmac: Option<HmacConfig>,
    /// The URL the vendor posts to, as it signs it; required when `scheme` is `mandrill`.
    pub public_url: Option<String>,
    /// Accepted clock skew for timestamped schemes.
    pub tolerance: Duration,
    /// Origins (`scheme://host[:port]`, normalised) deliveries and fetches may reach;
    /// `"*"` allows any.
    pub allowed_hosts: Vec<String>,
    /// Signs deliveries with Standard Webhooks when set.
    pub outbound_secret: Option<Secret>,
    /// Effective retry policy: `[connector.retry]` over the top-level `[retry]`.
    pub retry: RetryConfig,
    /// Calls of this connector at once; `None`: half of `server.workers` (see
    /// [`ConnectorConfig::concurrency`]).
    pub max_concurrency: Option<usize>,
    /// `[connector.settings]` as read by the plugin: strings as given (references resolved),
    /// other values as JSON text.
    pub settings: BTreeMap<String, String>,
    /// The settings given as `env:`/`file:` references: secrets (an API key), masked as
    /// `****` wherever the host shows what the connector did (its log lines, fetches and
    /// deliveries in the event log).
    pub secret_settings: BTreeSet<String>,
}

/// One `[[destination]]`: a downstream that connectors deliver to by name
/// (`destination:ID`), with its own limits and circuit breaker (`crate::destination`).
#[derive(Debug, Clone, PartialEq)]
pub struct DestinationConfig {
    pub id: String,
    /// `http(s)://…`, or a broker: `nats://…/subject`, `amqp://…`, `redis://…/stream`.
    pub url: String,
    /// `false`: deliveries to it wait (kept, never dropped) until it is enabled.
    pub enabled: bool,
    /// Headers added to every delivery (values may be `env:`/`file:` references); they
    /// replace a connector's header of the same name.
    pub headers: Vec<(String, Secret)>,
    /// Signs deliveries with Standard Webhooks; replaces the connector's `outbound_secret`.
    pub outbound_secret: Option<Secret>,
    /// Deliveries per second (a token bucket of `rate_limit_burst`); `None`: unlimited.
    pub rate_limit: Option<u32>,
    /// Deliveries the bucket lets through at once after a quiet spell (default 1: evenly
    /// spaced).
    pub rate_limit_burst: u32,
    /// Deliveries in flight at once; `None`: unlimited (the host's delivery slots).
    pub max_concurrency: Option<usize>,
    /// `[destination.retry]` (and `timeout`) over the connector's policy.
    pub retry: RetryOverride,
    /// Consecutive failed tries (5xx, 408, 429, no answer) that open the breaker.
    pub breaker_failures: u32,
    /// How long an open breaker waits before one probe; doubled after each failed probe,
    /// up to ten times this.
    pub breaker_cooldown: Duration,
    /// Open this long without a successful probe: the destination is disabled, an alert
    /// goes out, and its deliveries wait for an operator's `enable`.
    pub disable_after: Duration,
}

/// Retry keys a destination may set over the connector's policy; `None` keeps it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RetryOverride {
    pub max_attempts: Option<u32>,
    pub initial_backoff: Option<Duration>,
    pub max_backoff: Option<Duration>,
    pub jitter: Option<f64>,
    pub timeout: Option<Duration>,
}

impl RetryOverride {
    /// `base` with this override's keys in place.
    pub fn over(&self, base: &RetryConfig) -> RetryConfig {
        RetryConfig {
            max_attempts: self.max_attempts.unwrap_or(base.max_attempts),
            initial_backoff: self.initial_backoff.unwrap_or(base.initial_backoff),
            max_backoff: self.max_backoff.unwrap_or(base.max_backoff),
            jitter: self.jitter.unwrap_or(base.jitter),
            timeout: self.timeout.unwrap_or(base.timeout),
        }
    }
}

/// `[alerts]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertsConfig {
    /// Receives a JSON POST when a destination is disabled (and when it is enabled again).
    pub url: Option<String>,
}

impl DestinationConfig {
    /// A destination with the defaults of the config file (for tests and builders).
    pub fn new(id: &str, url: &str) -> DestinationConfig {
        DestinationConfig {
            id: id.into(),
            url: url.into(),
            enabled: true,
            headers: Vec::new(),
            outbound_secret: None,
            rate_limit: None,
            rate_limit_burst: 1,
            max_concurrency: None,
            retry: RetryOverride::default(),
            breaker_failures: 5,
            breaker_cooldown: Duration::from_secs(30),
            disable_after: Duration::from_secs(24 * 3600),
        }
    }
}

/// Settings values are left out: an `env:`/`file:` reference (an API key) is resolved in place.
impl fmt::Debug for ConnectorConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectorConfig")
            .field("id", &self.id)
            .field("plugin", &self.plugin)
            .field("enabled", &self.enabled)
            .field("paused", &self.paused)
            .field("secret", &self.secret)
            .field("scheme", &self.scheme)
            .field("hmac", &self.hmac)
            .field("public_url", &self.public_url)
            .field("tolerance", &self.tolerance)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("outbound_secret", &self.outbound_secret)
            .field("retry", &self.retry)
            .field("max_concurrency", &self.max_concurrency)
            .field("settings", &self.settings.keys().collect::<Vec<_>>())
            .field("secret_settings", &self.secret_settings)
            .finish()
    }
}

/// Why a config could not be loaded. Each message names the key; none contains a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file itself could not be read.
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The text is not TOML. Only the parser's message and position are kept: the offending
    /// line may hold a secret.
    #[error("{origin}:{line}:{column}: invalid TOML: {message}")]
    Syntax {
        origin: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// A key the config does not have (usually a typo).
    #[error("unknown key `{key}` in {table}{hint}")]
    UnknownKey {
        key: String,
        /// `[server]`, `connector[0] (stripe)`, `the top-level table`.
        table: String,
        /// A suggestion or the environment variable that set it, starting with `; `, or empty.
        hint: String,
    },
    /// A value that is missing, of the wrong type, or breaks a rule.
    #[error("{key}: {message}")]
    Invalid {
        /// Path of the key: `storage.retention_days`, `connector[0] (stripe).secret[1]`.
        key: String,
        message: String,
    },
}

impl ConfigError {
    fn invalid(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError::Invalid {
            key: key.into(),
            message: message.into(),
        }
    }
}

impl Config {
    /// Built-in defaults, then the file at `path`, then `SWITCHYARD_<SECTION>_<KEY>`
    /// environment variables; secret references resolved; then [`Config::validate`].
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        load::from_file(path, &load::Env::Process)
    }

    /// [`Config::load`] with a fixed set of environment variables instead of the process's.
    pub fn load_with_env(
        path: &Path,
        env: &HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        load::from_file(path, &load::Env::Map(env))
    }

    /// [`Config::load`] from TOML text, with `env` as the only environment variables (for
    /// overrides and `env:` references). Relative `file:` references are relative to the
    /// working directory.
    pub fn from_toml_str(toml: &str, env: &HashMap<String, String>) -> Result<Config, ConfigError> {
        load::from_text(toml, "config", None, &load::Env::Map(env))
    }

    /// The connector with this id.
    pub fn connector(&self, id: &str) -> Option<&ConnectorConfig> {
        self.connectors.iter().find(|c| c.id == id)
    }

    /// Checks the rules a loaded config must follow; [`Config::load`] calls it.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate::config(self)
    }

    /// A few lines for `switchyard check`: where it listens, stores and loads plugins from,
    /// and one line per connector. Secrets are counted, never shown. No trailing newline.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        let s = &self.server;
        let token = match (&s.admin_token, &s.admin_read_token) {
            (Some(_), Some(_)) => "set, and a read-only one",
            (Some(_), None) => "set",
            (None, Some(_)) => "not set, a read-only one set",
            (None, None) => "not set: the admin API is off",
        };
        let _ = writeln!(out, "listen      {} (admin token {token})", s.listen);
        let st = &self.storage;
        let location = match st.backend {
            Backend::Sled => format!("sled at {}", st.path.display()),
            Backend::Nats => format!(
                "nats at {} (prefix {}, {} replica{}, {})",
                st.nats_urls.join(", "),
                st.nats_prefix,
                st.replicas,
                if st.replicas == 1 { "" } else { "s" },
                st.nats_auth.kind()
            ),
        };
        let durable = if st.durable { "durable" } else { "NOT durable" };
        let _ = writeln!(
            out,
            "storage     {location} (retention {} days, dedupe window {}, {durable})",
            st.retention_days,
            humantime::format_duration(st.dedupe_window),
        );
        let p = &self.plugins;
        let _ = writeln!(
            out,
            "plugins     {} ({}, deadline {}, memory {} MiB)",
            p.dir.display(),
            if p.watch { "watched" } else { "not watched" },
            humantime::format_duration(p.deadline),
            p.max_memory_bytes / (1024 * 1024),
        );
        let _ = writeln!(out, "retry       {}", retry_summary(&self.retry));
        let _ = writeln!(out, "connectors  {}", self.connectors.len());
        for c in &self.connectors {
            let state = match (c.enabled, c.paused) {
                (false, _) => "disabled",
                (true, true) => "paused",
                (true, false) => "enabled",
            };
            let scheme = c.scheme.map_or("(plugin default)", SchemeName::as_str);
            let _ = write!(
                out,
                "  {}  {}  {state}  scheme {scheme}  secrets {}",
                c.id,
                c.plugin,
                c.secret.len(),
            );
            if c.retry != self.retry {
                let _ = write!(out, "  retry {}", retry_summary(&c.retry));
            }
            out.push('\n');
        }
        out.truncate(out.trim_end().len());
        out
    }
}

fn retry_summary(r: &RetryConfig) -> String {
    format!(
        "{} attempts, backoff {}..{}, jitter {}, timeout {}",
        r.max_attempts,
        humantime::format_duration(r.initial_backoff),
        humantime::format_duration(r.max_backoff),
        r.jitter,
        humantime::format_duration(r.timeout),
    )
}

impl ServerConfig {
    /// `workers`, with 0 replaced by eight per CPU: a worker waits while its connector
    /// awaits `http.fetch` and while the store takes the outcome, so several per core keep
    /// the CPUs busy. Each connector gets half of them by default
    /// ([`ConnectorConfig::concurrency`]): four per CPU, what one connector measured best
    /// end to end (2026-12-07: half as many cost it a fifth of its deliveries per second).
    pub fn worker_count(&self) -> usize {
        match self.workers {
            0 => cpus() * 8,
            n => n,
        }
    }
}

/// The CPUs this process may use, asked once: `available_parallelism` reads the cgroup's
/// files on every call, and the dispatchers ask for every event (it was 14 % of the host's
/// CPU at end-to-end load: BENCHMARKS.md, issue 21). A CPU quota changed while the host
/// runs is seen at the next start.
fn cpus() -> usize {
    static CPUS: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *CPUS.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// The built-in defaults ([`DEFAULT_CONFIG_TOML`]), no connectors.
impl Default for Config {
    fn default() -> Self {
        Config::from_toml_str("", &HashMap::new()).expect("the built-in defaults are valid")
    }
}

impl Default for ServerConfig {
    fn default() -> Self {
        Config::default().server
    }
}

impl Default for StorageConfig {
    fn default() -> Self {
        Config::default().storage
    }
}

impl Default for PluginsConfig {
    fn default() -> Self {
        Config::default().plugins
    }
}

impl Default for RetryConfig {
    fn default() -> Self {
        Config::default().retry
    }
}

/// The defaults of a `[[connector]]` with no id or plugin yet (for tests and builders).
impl Default for ConnectorConfig {
    fn default() -> Self {
        ConnectorConfig {
            id: String::new(),
            plugin: String::new(),
            enabled: true,
            paused: false,
            secret: Vec::new(),
            scheme: None,
            hmac: None,
            public_url: None,
            tolerance: load::DEFAULT_TOLERANCE,
            allowed_hosts: Vec::new(),
            outbound_secret: None,
            retry: RetryConfig::default(),
            max_concurrency: None,
            settings: BTreeMap::new(),
            secret_settings: BTreeSet::new(),
        }
    }
}

impl ConnectorConfig {
    /// How many calls of this connector may run at once: `max_concurrency`, else half of
    /// the workers (at least one), so one slow or spinning connector never holds every
    /// worker while the others' events wait.
    /// The values of [`ConnectorConfig::secret_settings`].
    pub fn setting_secrets(&self) -> Vec<Secret> {
        self.secret_settings
            .iter()
            .filter_map(|key| self.settings.get(key))
            .map(|value| Secret::new(value.clone()))
            .collect()
    }

    /// The connector's share of the host's `workers` (`server.worker_count()`).
    pub fn concurrency(&self, workers: usize) -> usize {
        self.max_concurrency.unwrap_or_else(|| (workers / 2).max(1))
    }
}
