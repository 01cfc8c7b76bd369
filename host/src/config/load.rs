//! Layering (defaults, file, environment), extraction, error translation, secret references.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use figment::Figment;
use figment::error::Kind;
use figment::providers::Serialized;
use figment::value::{Dict, Value};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};

use super::{
    AlertsConfig, Backend, Config, ConfigError, ConnectorConfig, DEFAULT_CONFIG_TOML,
    DestinationConfig, HmacConfig, LogFormat, NatsAuth, PluginsConfig, RetryConfig, RetryOverride,
    SchemeName, ServerConfig, StorageConfig, TelemetryConfig, validate,
};
use crate::secret::Secret;

pub(super) const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Prefix of the environment variables that override file values.
const ENV_PREFIX: &str = "SWITCHYARD_";

/// Sections that environment variables may override. `[[connector]]` is a list, so it has no
/// `SWITCHYARD_CONNECTOR_*` form; any other `SWITCHYARD_*` variable (`SWITCHYARD_ADMIN_TOKEN`,
/// a common `env:` target, or `SWITCHYARD_CONFIG` for the CLI) is not ours and is ignored.
const ENV_SECTIONS: &[&str] = &["server", "storage", "plugins", "retry", "telemetry"];

/// Keys whose value is text: an environment value for them is kept as it is, so that
/// `SWITCHYARD_SERVER_ADMIN_TOKEN=123456` stays a string. Other keys' values are parsed as
/// TOML scalars (`8080`, `true`, `0.5`). A test holds this list to the types
/// (`the_env_text_keys_are_exactly_the_keys_that_take_text`), so it cannot drift.
///
/// Why not figment's `Env` provider: it parses every value as a scalar too, so it would
/// need this same list (or every text field made to accept numbers, which would change
/// what a file's `listen = 8080` is told); it reads only the process environment, where
/// our [`Env::Map`] lets the tests give a fixed set; and it would leave us the same work to
/// name the variable in an error and to refuse a value that is not UTF-8. The layering
/// itself is figment's (`from_text`).
pub(super) const ENV_TEXT_KEYS: &[&str] = &[
    "server.listen",
    "server.admin_token",
    "server.admin_read_token",
    "server.shutdown_timeout",
    "server.header_timeout",
    "server.body_timeout",
    "server.log_format",
    "telemetry.otlp_endpoint",
    "telemetry.service_name",
    "storage.backend",
    "storage.path",
    "storage.nats_url",
    "storage.nats_prefix",
    "storage.nats_token",
    "storage.nats_user",
    "storage.nats_password",
    "storage.nats_creds",
    "storage.dedupe_window",
    "plugins.dir",
    "plugins.deadline",
    "plugins.cache_dir",
    "retry.initial_backoff",
    "retry.max_backoff",
    "retry.timeout",
];

/// Where environment variables come from.
pub(super) enum Env<'a> {
    Process,
    /// A fixed set, for tests: nothing else is visible.
    Map(&'a HashMap<String, String>),
}

impl Env<'_> {
    /// `Err` holds why a set variable cannot be used.
    fn var(&self, name: &str) -> Result<Option<String>, String> {
        match self {
            Env::Process => match std::env::var(name) {
                Ok(v) => Ok(Some(v)),
                Err(std::env::VarError::NotPresent) => Ok(None),
                Err(std::env::VarError::NotUnicode(_)) => {
                    Err(format!("environment variable {name} is not valid UTF-8"))
                }
            },
            Env::Map(map) => Ok(map.get(name).cloned()),
        }
    }

    /// Every `SWITCHYARD_*` variable, sorted by name.
    fn prefixed(&self) -> Result<Vec<(String, String)>, ConfigError> {
        let mut vars = match self {
            Env::Process => {
                let mut vars = Vec::new();
                for (name, value) in std::env::vars_os() {
                    let Some(name) = name.to_str().filter(|n| n.starts_with(ENV_PREFIX)) else {
                        continue;
                    };
                    let Some(value) = value.to_str() else {
                        if override_key(name).is_none() {
                            continue;
                        }
                        return Err(ConfigError::invalid(
                            name,
                            "environment variable is not valid UTF-8",
                        ));
                    };
                    vars.push((name.to_owned(), value.to_owned()));
                }
                vars
            }
            Env::Map(map) => map
                .iter()
                .filter(|(name, _)| name.starts_with(ENV_PREFIX))
                .map(|(n, v)| (n.clone(), v.clone()))
                .collect(),
        };
        vars.sort();
        Ok(vars)
    }
}

pub(super) fn from_file(path: &Path, env: &Env<'_>) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_owned(),
        source,
    })?;
    let dir = path.parent().map(|d| {
        if d.as_os_str().is_empty() {
            Path::new(".")
        } else {
            d
        }
    });
    let mut config = from_text(&text, &path.display().to_string(), dir, env)?;
    config.source = Some(path.to_owned());
    Ok(config)
}

/// `origin` names the text in syntax errors; `base_dir` anchors relative `file:` references.
pub(super) fn from_text(
    text: &str,
    origin: &str,
    base_dir: Option<&Path>,
    env: &Env<'_>,
) -> Result<Config, ConfigError> {
    let defaults = parse_toml(DEFAULT_CONFIG_TOML, "built-in defaults")?;
    let file = parse_toml(text, origin)?;
    let overrides = env_overrides(env)?;

    let figment = Figment::new()
        .merge(Serialized::defaults(defaults))
        .merge(Serialized::defaults(&file))
        .merge(Serialized::defaults(overrides.dict));
    let context = ErrorContext {
        file: &file,
        env_vars: &overrides.vars,
    };
    let raw: RawConfig = figment.extract().map_err(|e| context.translate(e))?;

    let resolver = Resolver { env, base_dir };
    let config = raw.finish(&context, &resolver)?;
    config.validate()?;
    Ok(config)
}

/// Parses TOML keeping only the parser's message and position: toml's own `Display` quotes
/// the offending line, which may hold a literal secret.
fn parse_toml(text: &str, origin: &str) -> Result<toml::Table, ConfigError> {
    toml::from_str(text).map_err(|e: toml::de::Error| {
        let offset = e.span().map_or(0, |s| s.start).min(text.len());
        let before = &text[..offset];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        ConfigError::Syntax {
            origin: origin.to_owned(),
            line,
            column,
            message: e.message().trim_end().to_owned(),
        }
    })
}

struct EnvOverrides {
    /// `{"server": {"listen": …}}`, merged over the file.
    dict: Dict,
    /// Key path (`server.listen`) → variable that set it, for error messages.
    vars: HashMap<String, String>,
}

/// `SWITCHYARD_SERVER_MAX_BODY_BYTES=…` → `server.max_body_bytes`: strip the prefix,
/// lowercase, and the first `_` separates section from key.
fn env_overrides(env: &Env<'_>) -> Result<EnvOverrides, ConfigError> {
    let mut dict = Dict::new();
    let mut vars = HashMap::new();
    for (name, value) in env.prefixed()? {
        let Some((section, key)) = override_key(&name) else {
            continue;
        };
        let path = format!("{section}.{key}");
        let value = if ENV_TEXT_KEYS.contains(&path.as_str()) {
            Value::from(value)
        } else {
            // Figment's parser: TOML-like scalars and arrays, anything else a string.
            value.parse::<Value>().unwrap_or_else(|e| match e {})
        };
        let table = dict
            .entry(section)
            .or_insert_with(|| Value::from(Dict::new()));
        if let Value::Dict(_, table) = table {
            table.insert(key, value);
        }
        vars.insert(path, name);
    }
    Ok(EnvOverrides { dict, vars })
}

/// `(section, key)` that a `SWITCHYARD_*` variable overrides, or `None` when it is not ours.
fn override_key(name: &str) -> Option<(String, String)> {
    let rest = name.strip_prefix(ENV_PREFIX)?.to_ascii_lowercase();
    let (section, key) = rest.split_once('_')?;
    if !ENV_SECTIONS.contains(&section) || key.is_empty() {
        return None;
    }
    Some((section.to_owned(), key.to_owned()))
}

/// What error translation needs to name keys well.
struct ErrorContext<'a> {
    /// The operator's file, to find a connector's id by its index.
    file: &'a toml::Table,
    env_vars: &'a HashMap<String, String>,
}

impl ErrorContext<'_> {
    /// The `id` of `[[list]]` entry `index` (`connector`, `destination`), if it has one.
    fn list_id(&self, list: &str, index: usize) -> Option<&str> {
        self.file
            .get(list)?
            .as_array()?
            .get(index)?
            .get("id")?
            .as_str()
            .filter(|id| !id.is_empty())
    }

    /// `connector[0] (stripe)`: how errors name a connector.
    fn connector(&self, index: usize) -> String {
        connector_label(index, self.list_id("connector", index))
    }

    /// `["connector", "0", "secret", "1"]` → `connector[0] (stripe).secret[1]`.
    fn key_path(&self, path: &[String]) -> String {
        let mut out = String::new();
        let mut i = 0;
        while i < path.len() {
            let segment = &path[i];
            if i == 0
                && let Some(index) = path.get(1).and_then(|s| s.parse::<usize>().ok())
            {
                match segment.as_str() {
                    "connector" => out.push_str(&self.connector(index)),
                    "destination" => out.push_str(&destination_label(
                        index,
                        self.list_id("destination", index),
                    )),
                    _ => out.push_str(&format!("{segment}[{index}]")),
                }
                i += 2;
                continue;
            }
            if segment.parse::<usize>().is_ok() {
                out.push_str(&format!("[{segment}]"));
            } else {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(&toml_key(segment));
            }
            i += 1;
        }
        out
    }

    /// `(set by environment variable SWITCHYARD_SERVER_LISTEN)` when that is where it came from.
    fn env_note(&self, path: &[String]) -> String {
        self.env_vars
            .get(&path.join("."))
            .map(|var| format!(" (set by environment variable {var})"))
            .unwrap_or_default()
    }

    fn translate(&self, error: figment::Error) -> ConfigError {
        // Figment may collect several errors; the first is enough to fail fast.
        let error = error
            .into_iter()
            .next()
            .expect("an error holds at least one");
        let path = error.path;
        match error.kind {
            Kind::UnknownField(key, expected) => {
                // Figment's path ends with the unknown key itself; name the table holding it.
                let mut path = path;
                if path.last() == Some(&key) {
                    path.pop();
                }
                let table = match path.as_slice() {
                    [] => "the top-level table".to_owned(),
                    [section] => format!("[{section}]"),
                    _ => self.key_path(&path),
                };
                let mut full = path.clone();
                full.push(key.clone());
                let hint = match self.env_vars.get(&full.join(".")) {
                    Some(var) => format!("; it was set by environment variable {var}"),
                    None => suggestion(&key, expected),
                };
                ConfigError::UnknownKey { key, table, hint }
            }
            Kind::MissingField(field) => {
                let mut full = path;
                full.push(field.into_owned());
                ConfigError::invalid(self.key_path(&full), "is required")
            }
            Kind::InvalidType(figment::error::Actual::Map, _) if path == ["connector"] => {
                ConfigError::invalid(
                    "connector",
                    "write each connector as [[connector]] (double brackets): it is a list",
                )
            }
            Kind::InvalidType(figment::error::Actual::Map, _) if path == ["destination"] => {
                ConfigError::invalid(
                    "destination",
                    "write each destination as [[destination]] (double brackets): it is a list",
                )
            }
            kind => {
                let message = match kind {
                    Kind::Message(message) => message,
                    Kind::InvalidType(actual, expected) => format!(
                        "expected {}, found {}",
                        friendly(&expected),
                        actual_kind(&actual)
                    ),
                    Kind::InvalidValue(actual, expected) => {
                        format!(
                            "expected {}, found {}",
                            friendly(&expected),
                            actual_number(&actual)
                        )
                    }
                    Kind::UnknownVariant(value, expected) => format!(
                        "unknown value `{value}`, expected {}",
                        one_of(expected.iter().copied())
                    ),
                    other => other.to_string(),
                };
                let note = self.env_note(&path);
                ConfigError::invalid(self.key_path(&path), format!("{message}{note}"))
            }
        }
    }
}

/// The type of a wrong value without the value itself: it may be a secret put where it does
/// not belong (an unquoted numeric token, say).
fn actual_kind(actual: &figment::error::Actual) -> &'static str {
    use figment::error::Actual;
    match actual {
        Actual::Bool(_) => "a boolean",
        Actual::Unsigned(_) | Actual::Signed(_) => "an integer",
        Actual::Float(_) => "a float",
        Actual::Char(_) | Actual::Str(_) => "a string",
        Actual::Seq => "an array",
        Actual::Map => "a table",
        _ => "another type",
    }
}

/// Numbers are shown (they are out of range for a numeric key); anything else by its kind only.
fn actual_number(actual: &figment::error::Actual) -> String {
    use figment::error::Actual;
    match actual {
        Actual::Unsigned(v) => format!("`{v}`"),
        Actual::Signed(v) => format!("`{v}`"),
        Actual::Float(v) => format!("`{v}`"),
        other => actual_kind(other).to_owned(),
    }
}

/// Serde's expectations in an operator's words.
fn friendly(expected: &str) -> String {
    match expected {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a whole number, 0 or more".to_owned(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "a whole number".to_owned(),
        "f32" | "f64" => "a number".to_owned(),
        "a boolean" => "true or false".to_owned(),
        "a sequence" => "an array".to_owned(),
        "enum Backend" => r#""sled" or "nats""#.to_owned(),
        "enum HmacEncoding" => r#""hex" or "base64""#.to_owned(),
        other if other.starts_with("struct ") => "a table".to_owned(),
        other => other.to_owned(),
    }
}

/// `destination[0] (billing)`: how errors name a destination.
pub(super) fn destination_label(index: usize, id: Option<&str>) -> String {
    match id {
        Some(id) if !id.is_empty() => format!("destination[{index}] ({id})"),
        _ => format!("destination[{index}]"),
    }
}

pub(super) fn connector_label(index: usize, id: Option<&str>) -> String {
    match id {
        Some(id) if !id.is_empty() => format!("connector[{index}] ({id})"),
        _ => format!("connector[{index}]"),
    }
}

/// A key as TOML would need it written: bare when it can be, quoted otherwise.
fn toml_key(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_owned()
    } else {
        format!("{key:?}")
    }
}

fn one_of<'a>(names: impl Iterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
    match names.as_slice() {
        [] => "nothing".to_owned(),
        [one] => one.clone(),
        [a, b] => format!("{a} or {b}"),
        [init @ .., last] => format!("one of {} or {last}", init.join(", ")),
    }
}

/// `; did you mean `listen`?` for a near miss, else the keys the table has.
fn suggestion(key: &str, expected: &[&str]) -> String {
    let closest = expected
        .iter()
        .map(|e| (strsim::levenshtein(key, e), *e))
        .filter(|(d, e)| *d <= 2.max(e.len() / 3))
        .min();
    match closest {
        Some((_, e)) => format!("; did you mean `{e}`?"),
        None if expected.is_empty() => String::new(),
        None => format!("; expected {}", one_of(expected.iter().copied())),
    }
}

/// One `env:VAR` / `file:PATH` / literal value, against the process environment, with
/// relative files taken from the working directory. `key` names it in errors.
pub(super) fn resolve_one(key: &str, raw: &str) -> Result<String, ConfigError> {
    Resolver {
        env: &Env::Process,
        base_dir: None,
    }
    .resolve(key, raw)
}

/// Resolves `env:VAR` and `file:PATH` references.
struct Resolver<'a> {
    env: &'a Env<'a>,
    /// The config file's folder; `None` (TOML text) means the working directory.
    base_dir: Option<&'a Path>,
}

impl Resolver<'_> {
    /// The value a string stands for. `key` is only for error messages.
    fn resolve(&self, key: &str, raw: &str) -> Result<String, ConfigError> {
        if let Some(var) = raw.strip_prefix("env:") {
            let var = var.trim();
            if var.is_empty() {
                return Err(ConfigError::invalid(key, "`env:` needs a variable name"));
            }
            return match self.env.var(var) {
                Ok(Some(value)) if value.is_empty() => Err(ConfigError::invalid(
                    key,
                    format!("environment variable {var} is set but empty"),
                )),
                Ok(Some(value)) => Ok(value),
                Ok(None) => Err(ConfigError::invalid(
                    key,
                    format!("environment variable {var} is not set"),
                )),
                Err(reason) => Err(ConfigError::invalid(key, reason)),
            };
        }
        if let Some(file) = raw.strip_prefix("file:") {
            if file.is_empty() {
                return Err(ConfigError::invalid(key, "`file:` needs a path"));
            }
            let path = match self.base_dir {
                Some(dir) if Path::new(file).is_relative() => dir.join(file),
                _ => PathBuf::from(file),
            };
            let shown = path.display();
            let bytes = std::fs::read(&path)
                .map_err(|e| ConfigError::invalid(key, format!("cannot read file {shown}: {e}")))?;
            let text = String::from_utf8(bytes).map_err(|_| {
                ConfigError::invalid(key, format!("file {shown} is not valid UTF-8"))
            })?;
            let value = text.trim_end_matches(['\n', '\r']);
            if value.is_empty() {
                return Err(ConfigError::invalid(key, format!("file {shown} is empty")));
            }
            return Ok(value.to_owned());
        }
        Ok(raw.to_owned())
    }

    fn secret(&self, key: &str, value: &Value) -> Result<Secret, ConfigError> {
        match value.as_str() {
            Some(raw) => Ok(Secret::new(self.resolve(key, raw)?)),
            None => Err(ConfigError::invalid(
                key,
                r#"expected a string: "env:VAR", "file:PATH" or the secret itself"#,
            )),
        }
    }

    /// `secret = "…"` or `secret = ["…", "…"]`.
    fn secrets(&self, key: &str, value: &Value) -> Result<Vec<Secret>, ConfigError> {
        match value {
            Value::Array(_, items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| self.secret(&format!("{key}[{i}]"), item))
                .collect(),
            Value::String(..) => Ok(vec![self.secret(key, value)?]),
            _ => Err(ConfigError::invalid(
                key,
                "expected a string or an array of strings (several secrets during rotation)",
            )),
        }
    }
}

/// A `[connector.settings]` value as the plugin reads it: text as-is, anything else as JSON.
fn setting_text(key: &str, value: &Value, resolver: &Resolver<'_>) -> Result<String, ConfigError> {
    if let Some(raw) = value.as_str() {
        return resolver.resolve(key, raw);
    }
    let json = serde_json::to_value(value)
        .map_err(|e| ConfigError::invalid(key, format!("cannot convert to JSON: {e}")))?;
    Ok(match unwrap_datetimes(json) {
        serde_json::Value::String(datetime) => datetime,
        other => other.to_string(),
    })
}

/// The marker key under which toml serialises a datetime.
const TOML_DATETIME: &str = "$__toml_private_datetime";

/// TOML datetimes arrive as `{"$__toml_private_datetime": "…"}`; make them plain strings.
fn unwrap_datetimes(value: serde_json::Value) -> serde_json::Value {
    use serde_json::Value as J;
    match value {
        J::Object(map) if map.len() == 1 && map.contains_key(TOML_DATETIME) => {
            map.into_iter().next().map_or(J::Null, |(_, v)| v)
        }
        J::Object(map) => J::Object(
            map.into_iter()
                .map(|(k, v)| (k, unwrap_datetimes(v)))
                .collect(),
        ),
        J::Array(items) => J::Array(items.into_iter().map(unwrap_datetimes).collect()),
        other => other,
    }
}

/// A humantime duration: `"500ms"`, `"10s"`, `"1h 30m"`, `"7days"`.
///
/// Parsed by the `humantime` crate; only this serde wrapper is ours. `humantime-serde` was
/// weighed: it answers `timeout = 10` with serde's "invalid type: integer, expected a
/// duration", where an operator is better told what to write (`"10s"`, with quotes and a
/// unit), and `the_env_text_keys_…`/`durations_are_humantime` pin these messages.
#[derive(Clone, Copy)]
struct HumanDuration(Duration);

impl<'de> Deserialize<'de> for HumanDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = HumanDuration;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(r#"a duration such as "10s""#)
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<HumanDuration, E> {
                humantime::parse_duration(v).map(HumanDuration).map_err(|e| {
                    E::custom(format!(
                        r#"`{v}` is not a duration ({e}); write e.g. "500ms", "10s", "5m", "7days""#
                    ))
                })
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    r#"a duration needs a unit and quotes, e.g. "{v}s""#
                )))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<HumanDuration, E> {
                Err(E::custom(format!(
                    r#"a duration needs a unit and quotes, e.g. "{v}s""#
                )))
            }
        }
        deserializer.deserialize_any(V)
    }
}

// The shapes serde reads. Sections have no serde defaults: the built-in defaults file supplies
// every key, so it stays the one place defaults are written. Secret-bearing keys are read as raw
// values and checked here, so a type error cannot echo them.

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    server: RawServer,
    storage: RawStorage,
    plugins: RawPlugins,
    retry: RawRetry,
    telemetry: RawTelemetry,
    #[serde(default)]
    connector: Vec<RawConnector>,
    #[serde(default)]
    destination: Vec<RawDestination>,
    #[serde(default)]
    alerts: RawAlerts,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct RawAlerts {
    #[serde(default)]
    url: Option<String>,
}

fn default_burst() -> u32 {
    1
}

fn default_breaker_failures() -> u32 {
    5
}

fn default_breaker_cooldown() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

fn default_disable_after() -> HumanDuration {
    HumanDuration(Duration::from_secs(24 * 3600))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawDestination {
    id: String,
    url: String,
    #[serde(default = "yes")]
    enabled: bool,
    /// Values may be secret references, so they are read raw.
    #[serde(default)]
    headers: BTreeMap<String, Value>,
    #[serde(default)]
    outbound_secret: Option<Value>,
    #[serde(default)]
    timeout: Option<HumanDuration>,
    #[serde(default)]
    rate_limit: Option<u32>,
    #[serde(default = "default_burst")]
    rate_limit_burst: u32,
    #[serde(default)]
    max_concurrency: Option<usize>,
    #[serde(default)]
    retry: RawRetryOverride,
    #[serde(default = "default_breaker_failures")]
    breaker_failures: u32,
    #[serde(default = "default_breaker_cooldown")]
    breaker_cooldown: HumanDuration,
    #[serde(default = "default_disable_after")]
    disable_after: HumanDuration,
}

impl RawDestination {
    fn finish(
        self,
        index: usize,
        resolver: &Resolver<'_>,
    ) -> Result<DestinationConfig, ConfigError> {
        let label = destination_label(index, Some(&self.id));
        let headers = self
            .headers
            .iter()
            .map(|(name, value)| {
                let key = format!("{label}.headers.{}", toml_key(name));
                Ok((name.clone(), resolver.secret(&key, value)?))
            })
            .collect::<Result<_, ConfigError>>()?;
        let outbound_secret = self
            .outbound_secret
            .as_ref()
            .map(|v| resolver.secret(&format!("{label}.outbound_secret"), v))
            .transpose()?;
        let mut retry = self.retry.into_override();
        if let Some(timeout) = self.timeout {
            retry.timeout = Some(timeout.0);
        }
        Ok(DestinationConfig {
            id: self.id,
            url: self.url.trim().to_owned(),
            enabled: self.enabled,
            headers,
            outbound_secret,
            rate_limit: self.rate_limit,
            rate_limit_burst: self.rate_limit_burst,
            max_concurrency: self.max_concurrency,
            retry,
            breaker_failures: self.breaker_failures,
            breaker_cooldown: self.breaker_cooldown.0,
            disable_after: self.disable_after.0,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTelemetry {
    #[serde(default)]
    otlp_endpoint: Option<String>,
    service_name: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawServer {
    listen: String,
    #[serde(default)]
    admin_token: Option<Value>,
    #[serde(default)]
    admin_read_token: Option<Value>,
    max_body_bytes: usize,
    workers: usize,
    shutdown_timeout: HumanDuration,
    admin_rate_limit: u32,
    max_header_bytes: usize,
    max_headers: usize,
    header_timeout: HumanDuration,
    body_timeout: HumanDuration,
    max_connections: usize,
    log_format: LogFormat,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    backend: Backend,
    path: PathBuf,
    retention_days: u32,
    #[serde(default)]
    nats_url: Option<Value>,
    nats_prefix: String,
    replicas: usize,
    #[serde(default)]
    nats_token: Option<Value>,
    #[serde(default)]
    nats_user: Option<String>,
    #[serde(default)]
    nats_password: Option<Value>,
    #[serde(default)]
    nats_creds: Option<Value>,
    dedupe_window: HumanDuration,
    durable: bool,
}

impl RawStorage {
    /// `nats_url = "nats://a:4222"`, `"nats://a:4222,nats://b:4222"` (the form an
    /// environment variable can give) or `["nats://a:4222", "nats://b:4222"]`.
    fn nats_urls(&self) -> Result<Vec<String>, ConfigError> {
        let split = |text: &str| -> Vec<String> {
            text.split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect()
        };
        match &self.nats_url {
            None => Ok(Vec::new()),
            Some(Value::String(_, text)) => Ok(split(text)),
            Some(Value::Array(_, items)) => items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    item.as_str()
                        .map(str::trim)
                        .map(str::to_owned)
                        .ok_or_else(|| {
                            ConfigError::invalid(
                                format!("storage.nats_url[{i}]"),
                                "expected a string",
                            )
                        })
                })
                .collect(),
            Some(_) => Err(ConfigError::invalid(
                "storage.nats_url",
                "expected a string or an array of strings (several servers)",
            )),
        }
    }

    fn nats_auth(&self, resolver: &Resolver<'_>) -> Result<NatsAuth, ConfigError> {
        let token = self
            .nats_token
            .as_ref()
            .map(|v| resolver.secret("storage.nats_token", v))
            .transpose()?;
        let password = self
            .nats_password
            .as_ref()
            .map(|v| resolver.secret("storage.nats_password", v))
            .transpose()?;
        let creds = self
            .nats_creds
            .as_ref()
            .map(|v| resolver.secret("storage.nats_creds", v))
            .transpose()?;
        let given = [
            token.is_some(),
            self.nats_user.is_some() || password.is_some(),
            creds.is_some(),
        ];
        if given.iter().filter(|g| **g).count() > 1 {
            return Err(ConfigError::invalid(
                "storage.nats_token",
                "give one of nats_token, nats_user and nats_password, or nats_creds",
            ));
        }
        Ok(match (token, self.nats_user.clone(), password, creds) {
            (Some(token), ..) => NatsAuth::Token(token),
            (_, Some(user), Some(password), _) => NatsAuth::UserPassword { user, password },
            (_, Some(_), None, _) => {
                return Err(ConfigError::invalid(
                    "storage.nats_password",
                    "is required with nats_user",
                ));
            }
            (_, None, Some(_), _) => {
                return Err(ConfigError::invalid(
                    "storage.nats_user",
                    "is required with nats_password",
                ));
            }
            (.., Some(creds)) => NatsAuth::Creds(creds),
            _ => NatsAuth::None,
        })
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPlugins {
    dir: PathBuf,
    watch: bool,
    deadline: HumanDuration,
    max_memory_bytes: u64,
    max_deliveries: usize,
    max_delivery_bytes: usize,
    max_result_bytes: usize,
    #[serde(default)]
    cache_dir: Option<PathBuf>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRetry {
    max_attempts: u32,
    initial_backoff: HumanDuration,
    max_backoff: HumanDuration,
    jitter: f64,
    timeout: HumanDuration,
}

/// `[connector.retry]`: every key optional, the rest comes from `[retry]`.
#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
struct RawRetryOverride {
    max_attempts: Option<u32>,
    initial_backoff: Option<HumanDuration>,
    max_backoff: Option<HumanDuration>,
    jitter: Option<f64>,
    timeout: Option<HumanDuration>,
}

fn yes() -> bool {
    true
}

fn default_tolerance() -> HumanDuration {
    HumanDuration(DEFAULT_TOLERANCE)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnector {
    id: String,
    plugin: String,
    #[serde(default = "yes")]
    enabled: bool,
    #[serde(default)]
    paused: bool,
    #[serde(default)]
    secret: Option<Value>,
    #[serde(default)]
    scheme: Option<SchemeName>,
    #[serde(default)]
    hmac: Option<HmacConfig>,
    #[serde(default)]
    public_url: Option<String>,
    #[serde(default = "default_tolerance")]
    tolerance: HumanDuration,
    #[serde(default)]
    allowed_hosts: Vec<String>,
    #[serde(default)]
    outbound_secret: Option<Value>,
    #[serde(default)]
    retry: RawRetryOverride,
    #[serde(default)]
    max_concurrency: Option<usize>,
    /// Free-form: no `deny_unknown_fields` reaches inside a map of values.
    #[serde(default)]
    settings: BTreeMap<String, Value>,
}

impl RawRetry {
    fn finish(self) -> RetryConfig {
        RetryConfig {
            max_attempts: self.max_attempts,
            initial_backoff: self.initial_backoff.0,
            max_backoff: self.max_backoff.0,
            jitter: self.jitter,
            timeout: self.timeout.0,
        }
    }
}

impl RawRetryOverride {
    fn into_override(self) -> RetryOverride {
        RetryOverride {
            max_attempts: self.max_attempts,
            initial_backoff: self.initial_backoff.map(|d| d.0),
            max_backoff: self.max_backoff.map(|d| d.0),
            jitter: self.jitter,
            timeout: self.timeout.map(|d| d.0),
        }
    }

    fn over(self, base: &RetryConfig) -> RetryConfig {
        RetryConfig {
            max_attempts: self.max_attempts.unwrap_or(base.max_attempts),
            initial_backoff: self.initial_backoff.map_or(base.initial_backoff, |d| d.0),
            max_backoff: self.max_backoff.map_or(base.max_backoff, |d| d.0),
            jitter: self.jitter.unwrap_or(base.jitter),
            timeout: self.timeout.map_or(base.timeout, |d| d.0),
        }
    }
}

impl RawConfig {
    fn finish(
        self,
        context: &ErrorContext<'_>,
        resolver: &Resolver<'_>,
    ) -> Result<Config, ConfigError> {
        let s = self.server;
        let listen = s.listen.trim().parse().map_err(|_| {
            let note = context.env_note(&["server".into(), "listen".into()]);
            ConfigError::invalid(
                "server.listen",
                format!(
                    "`{}` is not an IP address and port such as \"127.0.0.1:8080\" or \"[::]:8080\"{note}",
                    s.listen
                ),
            )
        })?;
        let admin_token = s
            .admin_token
            .map(|v| resolver.secret("server.admin_token", &v))
            .transpose()?;
        let admin_read_token = s
            .admin_read_token
            .map(|v| resolver.secret("server.admin_read_token", &v))
            .transpose()?;
        let server = ServerConfig {
            listen,
            admin_token,
            admin_read_token,
            max_body_bytes: s.max_body_bytes,
            workers: s.workers,
            shutdown_timeout: s.shutdown_timeout.0,
            admin_rate_limit: s.admin_rate_limit,
            max_header_bytes: s.max_header_bytes,
            max_headers: s.max_headers,
            header_timeout: s.header_timeout.0,
            body_timeout: s.body_timeout.0,
            max_connections: s.max_connections,
            log_format: s.log_format,
        };

        let st = self.storage;
        let nats_urls = st.nats_urls()?;
        let nats_auth = st.nats_auth(resolver)?;
        let storage = StorageConfig {
            backend: st.backend,
            path: st.path,
            retention_days: st.retention_days,
            nats_urls,
            nats_prefix: st.nats_prefix,
            replicas: st.replicas,
            nats_auth,
            dedupe_window: st.dedupe_window.0,
            durable: st.durable,
        };

        let p = self.plugins;
        let plugins = PluginsConfig {
            dir: p.dir,
            watch: p.watch,
            deadline: p.deadline.0,
            max_memory_bytes: p.max_memory_bytes,
            max_deliveries: p.max_deliveries,
            max_delivery_bytes: p.max_delivery_bytes,
            max_result_bytes: p.max_result_bytes,
            cache_dir: p.cache_dir,
        };

        let retry = self.retry.finish();
        let telemetry = TelemetryConfig {
            otlp_endpoint: self
                .telemetry
                .otlp_endpoint
                .map(|e| e.trim().to_string())
                .filter(|e| !e.is_empty()),
            service_name: self.telemetry.service_name,
        };
        let connectors = self
            .connector
            .into_iter()
            .enumerate()
            .map(|(index, c)| c.finish(index, &retry, resolver))
            .collect::<Result<_, _>>()?;
        let destinations = self
            .destination
            .into_iter()
            .enumerate()
            .map(|(index, d)| d.finish(index, resolver))
            .collect::<Result<_, _>>()?;
        let alerts = AlertsConfig {
            url: self
                .alerts
                .url
                .map(|u| u.trim().to_owned())
                .filter(|u| !u.is_empty()),
        };

        Ok(Config {
            server,
            storage,
            plugins,
            retry,
            telemetry,
            connectors,
            destinations,
            alerts,
            source: None,
        })
    }
}

impl RawConnector {
    fn finish(
        self,
        index: usize,
        retry: &RetryConfig,
        resolver: &Resolver<'_>,
    ) -> Result<ConnectorConfig, ConfigError> {
        let label = connector_label(index, Some(&self.id));
        let secret = match &self.secret {
            Some(value) => resolver.secrets(&format!("{label}.secret"), value)?,
            None => Vec::new(),
        };
        let outbound_secret = self
            .outbound_secret
            .as_ref()
            .map(|v| resolver.secret(&format!("{label}.outbound_secret"), v))
            .transpose()?;
        let allowed_hosts = self
            .allowed_hosts
            .iter()
            .enumerate()
            .map(|(i, host)| {
                validate::origin(host)
                    .map_err(|e| ConfigError::invalid(format!("{label}.allowed_hosts[{i}]"), e))
            })
            .collect::<Result<_, _>>()?;
        if self.max_concurrency == Some(0) {
            return Err(ConfigError::invalid(
                format!("{label}.max_concurrency"),
                "must be at least 1",
            ));
        }
        let secret_settings = self
            .settings
            .iter()
            .filter(|(_, value)| {
                value
                    .as_str()
                    .is_some_and(|raw| raw.starts_with("env:") || raw.starts_with("file:"))
            })
            .map(|(key, _)| key.clone())
            .collect();
        let settings = self
            .settings
            .iter()
            .map(|(key, value)| {
                let path = format!("{label}.settings.{}", toml_key(key));
                Ok((key.clone(), setting_text(&path, value, resolver)?))
            })
            .collect::<Result<_, ConfigError>>()?;
        Ok(ConnectorConfig {
            id: self.id,
            plugin: self.plugin,
            enabled: self.enabled,
            paused: self.paused,
            secret,
            scheme: self.scheme,
            hmac: self.hmac,
            public_url: self.public_url,
            tolerance: self.tolerance.0,
            allowed_hosts,
            outbound_secret,
            retry: self.retry.over(retry),
            max_concurrency: self.max_concurrency,
            settings,
            secret_settings,
        })
    }
}
