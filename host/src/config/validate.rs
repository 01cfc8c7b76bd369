//! The rules a loaded config must follow, checked before anything starts.

use std::collections::HashMap;
use std::time::Duration;

use super::load::{connector_label, destination_label};
use super::{
    Backend, Config, ConfigError, ConnectorConfig, DestinationConfig, RetryConfig, SchemeName,
};

/// Smallest memory cap worth having: one Wasm page.
const MIN_MEMORY_BYTES: u64 = 64 * 1024;

type Checked = Result<(), ConfigError>;

fn fail(key: impl Into<String>, message: impl Into<String>) -> Checked {
    Err(ConfigError::invalid(key, message))
}

pub(super) fn config(c: &Config) -> Checked {
    let s = &c.server;
    if s.max_body_bytes < 1 {
        return fail("server.max_body_bytes", "must be at least 1");
    }
    if s.admin_rate_limit < 1 {
        return fail("server.admin_rate_limit", "must be at least 1");
    }
    // A vendor's signature headers alone take a few hundred bytes.
    if s.max_header_bytes < 1024 {
        return fail("server.max_header_bytes", "must be at least 1024");
    }
    if s.max_headers < 8 {
        return fail("server.max_headers", "must be at least 8");
    }
    if s.header_timeout < Duration::from_millis(100) {
        return fail("server.header_timeout", "must be at least 100ms");
    }
    if s.body_timeout < Duration::from_millis(100) {
        return fail("server.body_timeout", "must be at least 100ms");
    }
    if s.max_connections < 1 {
        return fail("server.max_connections", "must be at least 1");
    }
    if s.admin_token
        .as_ref()
        .is_some_and(|t| t.expose().is_empty())
    {
        return fail("server.admin_token", "must not be empty");
    }
    if let Some(read) = &s.admin_read_token {
        if read.expose().is_empty() {
            return fail("server.admin_read_token", "must not be empty");
        }
        if s.admin_token
            .as_ref()
            .is_some_and(|t| t.expose() == read.expose())
        {
            return fail(
                "server.admin_read_token",
                "must differ from server.admin_token",
            );
        }
    }

    let st = &c.storage;
    if st.retention_days < 1 {
        return fail("storage.retention_days", "must be at least 1");
    }
    // Senders retry over minutes to days; the store's crash recovery relies on a window
    // longer than the stretch of the inbox it replays (`store/ingest.rs`).
    if st.dedupe_window < crate::config::MIN_DEDUPE_WINDOW {
        return fail("storage.dedupe_window", "must be at least 1 minute");
    }
    match st.backend {
        Backend::Sled if st.path.as_os_str().is_empty() => {
            return fail("storage.path", "must not be empty");
        }
        Backend::Nats if st.nats_urls.is_empty() => {
            return fail(
                "storage.nats_url",
                r#"is required when backend = "nats" (e.g. "nats://127.0.0.1:4222")"#,
            );
        }
        _ => {}
    }
    for (i, url) in st.nats_urls.iter().enumerate() {
        nats_url(url).map_err(|why| ConfigError::invalid(format!("storage.nats_url[{i}]"), why))?;
    }
    // Stream, bucket and subject names are built from it: NATS allows few characters there.
    if st.nats_prefix.is_empty()
        || st.nats_prefix.len() > 32
        || !st
            .nats_prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return fail(
            "storage.nats_prefix",
            "must be 1 to 32 letters, digits, `_` or `-`",
        );
    }
    if !matches!(st.replicas, 1 | 3) {
        return fail(
            "storage.replicas",
            "must be 1 (one server) or 3 (a quorum of a 3-node cluster)",
        );
    }

    let p = &c.plugins;
    if p.dir.as_os_str().is_empty() {
        return fail("plugins.dir", "must not be empty");
    }
    positive("plugins.deadline", p.deadline)?;
    if p.max_memory_bytes < MIN_MEMORY_BYTES {
        return fail(
            "plugins.max_memory_bytes",
            format!("must be at least {MIN_MEMORY_BYTES} (one Wasm page)"),
        );
    }
    if p.max_deliveries < 1 {
        return fail("plugins.max_deliveries", "must be at least 1");
    }
    if p.max_delivery_bytes < 1 {
        return fail("plugins.max_delivery_bytes", "must be at least 1");
    }
    if p.max_result_bytes < p.max_delivery_bytes {
        return fail(
            "plugins.max_result_bytes",
            "must be at least plugins.max_delivery_bytes",
        );
    }

    retry("retry", &c.retry)?;

    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (index, connector) in c.connectors.iter().enumerate() {
        let label = connector_label(index, Some(&connector.id));
        if let Some(first) = seen.insert(&connector.id, index) {
            return fail(
                format!("{label}.id"),
                format!(
                    "duplicate id `{}` (also used by connector[{first}])",
                    connector.id
                ),
            );
        }
        self::connector(&label, connector)?;
    }

    let mut seen: HashMap<&str, usize> = HashMap::new();
    for (index, d) in c.destinations.iter().enumerate() {
        let label = destination_label(index, Some(&d.id));
        if let Some(first) = seen.insert(&d.id, index) {
            return fail(
                format!("{label}.id"),
                format!(
                    "duplicate id `{}` (also used by destination[{first}])",
                    d.id
                ),
            );
        }
        destination(&label, d, &c.retry)?;
    }
    // A connector's grant of a destination must name one that exists.
    for (index, connector) in c.connectors.iter().enumerate() {
        for (i, entry) in connector.allowed_hosts.iter().enumerate() {
            if let Some(id) = entry.strip_prefix(DESTINATION_PREFIX)
                && !seen.contains_key(id)
            {
                let known: Vec<&str> = c.destinations.iter().map(|d| d.id.as_str()).collect();
                return fail(
                    format!(
                        "{}.allowed_hosts[{i}]",
                        connector_label(index, Some(&connector.id))
                    ),
                    format!(
                        "there is no [[destination]] with id `{id}` (known: {})",
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
        }
    }
    if let Some(url) = &c.alerts.url {
        let ok = url::Url::parse(url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
        if !ok {
            return fail("alerts.url", "must be an http:// or https:// URL");
        }
    }
    Ok(())
}

/// Deliveries are signed with it on every try: a secret that cannot sign is refused now,
/// not found out by sending deliveries unsigned. The reasons are fixed texts, never the
/// secret.
fn outbound_secret(key: &str, secret: &crate::secret::Secret) -> Checked {
    if secret.expose().is_empty() {
        return fail(key, "must not be empty");
    }
    if let Err(err) = crate::verify::sign(
        &crate::verify::Scheme::StandardWebhooks,
        secret,
        b"",
        0,
        "check",
    ) {
        return fail(key, err.to_string());
    }
    Ok(())
}

/// How a delivery URL, and an `allowed_hosts` entry, name a `[[destination]]`.
pub const DESTINATION_PREFIX: &str = "destination:";

fn destination(label: &str, d: &DestinationConfig, base: &RetryConfig) -> Checked {
    let key = |name: &str| format!("{label}.{name}");
    if !valid_id(&d.id) {
        return fail(
            key("id"),
            "must be 1 to 64 of a-z, 0-9, `_` and `-`, starting with a letter or digit \
             (connectors deliver to it as destination:{id})",
        );
    }
    destination_url(&d.url).map_err(|why| ConfigError::invalid(key("url"), why))?;
    for (name, _) in &d.headers {
        if !valid_header_name(name) {
            return fail(
                format!("{label}.headers"),
                format!("`{name}` is not an HTTP header name"),
            );
        }
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection" | "idempotency-key"
        ) || lower.starts_with("webhook-")
        {
            return fail(
                format!("{label}.headers"),
                format!("`{name}` is set by the host, not by the config"),
            );
        }
    }
    if let Some(secret) = &d.outbound_secret {
        outbound_secret(&key("outbound_secret"), secret)?;
    }
    if d.rate_limit == Some(0) {
        return fail(
            key("rate_limit"),
            "must be at least 1 (leave it out for no limit)",
        );
    }
    if d.rate_limit_burst < 1 {
        return fail(key("rate_limit_burst"), "must be at least 1");
    }
    if d.max_concurrency == Some(0) {
        return fail(
            key("max_concurrency"),
            "must be at least 1 (leave it out for no limit)",
        );
    }
    if d.breaker_failures < 1 {
        return fail(key("breaker_failures"), "must be at least 1");
    }
    positive(&key("breaker_cooldown"), d.breaker_cooldown)?;
    positive(&key("disable_after"), d.disable_after)?;
    retry(&key("retry"), &d.retry.over(base))
}

/// A destination's `url`: `http(s)://host…`, or a broker URL (`crate::broker`).
pub fn destination_url(url: &str) -> Result<(), String> {
    let parsed = url::Url::parse(url).map_err(|e| {
        format!("`{url}` is not a URL ({e}); expected http(s)://…, nats://…, amqp://… or redis://…")
    })?;
    match parsed.scheme() {
        "http" | "https" if parsed.has_host() => Ok(()),
        "http" | "https" => Err(format!("`{url}` has no host")),
        _ if crate::broker::Brokers::handles(url) => crate::broker::check_url(url),
        other => Err(format!(
            "the scheme `{other}` is not one a destination can use: http, https, nats, amqp, amqps, redis or rediss"
        )),
    }
}

fn positive(key: &str, d: Duration) -> Checked {
    if d.is_zero() {
        return fail(key, "must be greater than 0");
    }
    Ok(())
}

fn retry(prefix: &str, r: &RetryConfig) -> Checked {
    if r.max_attempts < 1 {
        return fail(format!("{prefix}.max_attempts"), "must be at least 1");
    }
    // `contains` is false for NaN too.
    if !(0.0..=1.0).contains(&r.jitter) {
        return fail(format!("{prefix}.jitter"), "must be between 0 and 1");
    }
    positive(&format!("{prefix}.initial_backoff"), r.initial_backoff)?;
    positive(&format!("{prefix}.max_backoff"), r.max_backoff)?;
    if r.initial_backoff > r.max_backoff {
        return fail(
            format!("{prefix}.initial_backoff"),
            format!(
                "{} is longer than max_backoff ({})",
                humantime::format_duration(r.initial_backoff),
                humantime::format_duration(r.max_backoff),
            ),
        );
    }
    positive(&format!("{prefix}.timeout"), r.timeout)
}

fn connector(label: &str, c: &ConnectorConfig) -> Checked {
    let key = |name: &str| format!("{label}.{name}");

    if c.id.is_empty() {
        return fail(key("id"), "must not be empty");
    }
    if !valid_id(&c.id) {
        return fail(
            key("id"),
            "must be 1 to 64 of a-z, 0-9, `_` and `-`, starting with a letter or digit \
             (it is the route /hooks/{id})",
        );
    }

    let stem = c.plugin.strip_suffix(".wasm").unwrap_or_default();
    if stem.is_empty() {
        return fail(key("plugin"), "must be a file name ending in .wasm");
    }
    if c.plugin.contains(['/', '\\']) || c.plugin.contains("..") {
        return fail(
            key("plugin"),
            "must be a file name inside plugins.dir, without `/`, `\\` or `..`",
        );
    }

    for (i, secret) in c.secret.iter().enumerate() {
        if secret.expose().is_empty() {
            return fail(format!("{label}.secret[{i}]"), "must not be empty");
        }
    }
    if let Some(secret) = &c.outbound_secret {
        outbound_secret(&key("outbound_secret"), secret)?;
    }

    // An unknown name never gets here: the config refuses it as it loads ([`SchemeName`]).
    if let Some(scheme) = c.scheme {
        if scheme != SchemeName::None && c.secret.is_empty() {
            return fail(key("secret"), format!("scheme `{scheme}` needs a secret"));
        }
        if scheme == SchemeName::HmacSha256 && c.hmac.is_none() {
            return fail(
                key("hmac"),
                r#"is required for scheme "hmac-sha256": add [connector.hmac] with header = "…""#,
            );
        }
        if scheme != SchemeName::HmacSha256 && c.hmac.is_some() {
            return fail(
                key("hmac"),
                format!(r#"is only used by scheme "hmac-sha256", not `{scheme}`"#),
            );
        }
        if scheme == SchemeName::Mandrill && c.public_url.is_none() {
            return fail(
                key("public_url"),
                r#"is required for scheme "mandrill": the webhook URL exactly as Mandrill has it"#,
            );
        }
        if scheme != SchemeName::Mandrill && c.public_url.is_some() {
            return fail(
                key("public_url"),
                format!(r#"is only used by scheme "mandrill", not `{scheme}`"#),
            );
        }
    }
    if let Some(hmac) = &c.hmac
        && !valid_header_name(&hmac.header)
    {
        return fail(
            format!("{label}.hmac.header"),
            "must be an HTTP header name, e.g. \"X-Signature\"",
        );
    }
    if let Some(public_url) = &c.public_url {
        let ok = url::Url::parse(public_url)
            .is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host());
        if !ok {
            return fail(key("public_url"), "must be an http:// or https:// URL");
        }
    }

    positive(&key("tolerance"), c.tolerance)?;

    for (i, host) in c.allowed_hosts.iter().enumerate() {
        origin(host).map_err(|e| ConfigError::invalid(format!("{label}.allowed_hosts[{i}]"), e))?;
    }

    retry(&key("retry"), &c.retry)
}

/// `[a-z0-9][a-z0-9_-]{0,63}`
fn valid_id(id: &str) -> bool {
    let mut chars = id.chars();
    let first_ok = chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    first_ok
        && id.len() <= 64
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-')
}

/// An RFC 9110 token.
fn valid_header_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// Checks an `allowed_hosts` entry and returns it normalised: `"*"`, or the ASCII origin
/// `scheme://host[:port]` (lowercase, default port dropped), so matching is a string compare
/// with `Url::origin().ascii_serialization()`.
pub(super) fn origin(entry: &str) -> Result<String, String> {
    if entry == "*" {
        return Ok(entry.to_owned());
    }
    if let Some(id) = entry.strip_prefix(DESTINATION_PREFIX) {
        if !valid_id(id) {
            return Err(format!(
                "`{entry}`: a destination is named `destination:ID`, with the id of a [[destination]]"
            ));
        }
        return Ok(entry.to_owned());
    }
    let example =
        r#"an origin such as "https://api.example.com" or "http://127.0.0.1:9000", or "*""#;
    let url = url::Url::parse(entry).map_err(|e| format!("`{entry}` is not {example} ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{entry}`: the scheme must be http or https"));
    }
    let Some(host) = url.host_str() else {
        return Err(format!("`{entry}` has no host; expected {example}"));
    };
    if host.contains('*') {
        return Err(format!(
            r#"`{entry}`: wildcards inside a host are not supported; list each host, or use "*" for any"#
        ));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err("an origin must not contain a user name or password".to_owned());
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!(
            "`{entry}` must be an origin only, without a path, query or fragment"
        ));
    }
    Ok(url.origin().ascii_serialization())
}

/// A NATS server URL: `nats://`, `tls://` (or `ws://`, `wss://`) with a host, or a bare
/// `host:port`.
fn nats_url(url: &str) -> Result<(), String> {
    let with_scheme = if url.contains("://") {
        url.to_owned()
    } else {
        format!("nats://{url}")
    };
    let parsed = url::Url::parse(&with_scheme).map_err(|e| format!("`{url}` is not a URL: {e}"))?;
    if !matches!(parsed.scheme(), "nats" | "tls" | "ws" | "wss") {
        return Err(format!(
            "`{url}`: the scheme must be nats://, tls://, ws:// or wss://"
        ));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(format!("`{url}` has no host"));
    }
    Ok(())
}
