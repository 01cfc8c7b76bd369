use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

const MINIMAL_CONNECTOR: &str = r#"
[[connector]]
id = "stripe"
plugin = "stripe.wasm"
"#;

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn parse(toml: &str) -> Config {
    parse_env(toml, &[])
}

fn parse_env(toml: &str, vars: &[(&str, &str)]) -> Config {
    Config::from_toml_str(toml, &env(vars)).unwrap_or_else(|e| panic!("config error: {e}"))
}

fn error(toml: &str) -> String {
    error_env(toml, &[])
}

fn error_env(toml: &str, vars: &[(&str, &str)]) -> String {
    match Config::from_toml_str(toml, &env(vars)) {
        Ok(config) => panic!("expected an error, got {config:#?}"),
        Err(e) => e.to_string(),
    }
}

fn connector(extra: &str) -> String {
    format!("{MINIMAL_CONNECTOR}{extra}")
}

// ---- defaults -------------------------------------------------------------------------------

#[test]
fn defaults() {
    let c = parse("");
    assert_eq!(c.server.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(c.server.admin_token, None);
    assert_eq!(c.server.max_body_bytes, 1_048_576);
    assert_eq!(c.server.workers, 0);
    assert!(c.server.worker_count() >= 1);
    assert_eq!(c.server.shutdown_timeout, Duration::from_secs(10));
    assert_eq!(c.server.admin_rate_limit, 3000);

    assert_eq!(c.storage.backend, Backend::Sled);
    assert_eq!(c.storage.path, PathBuf::from("data"));
    assert_eq!(c.storage.retention_days, 30);
    assert!(c.storage.nats_urls.is_empty());
    assert_eq!(c.storage.nats_prefix, "switchyard");
    assert_eq!(c.storage.replicas, 1);
    assert_eq!(c.storage.nats_auth, crate::config::NatsAuth::None);
    assert_eq!(c.storage.dedupe_window, Duration::from_secs(7 * 24 * 3600));
    assert!(c.storage.durable);

    assert_eq!(c.plugins.dir, PathBuf::from("dist/plugins"));
    assert!(c.plugins.watch);
    assert_eq!(c.plugins.deadline, Duration::from_secs(10));
    assert_eq!(c.plugins.max_memory_bytes, 64 * 1024 * 1024);
    assert_eq!(c.plugins.cache_dir, None);

    assert_eq!(c.retry.max_attempts, 10);
    assert_eq!(c.retry.initial_backoff, Duration::from_secs(2));
    assert_eq!(c.retry.max_backoff, Duration::from_secs(3600));
    assert_eq!(c.retry.jitter, 0.2);
    assert_eq!(c.retry.timeout, Duration::from_secs(15));

    assert!(c.connectors.is_empty());
    assert_eq!(c, Config::default());
    assert_eq!(c.retry, RetryConfig::default());
}

#[test]
fn connector_defaults() {
    let c = parse(MINIMAL_CONNECTOR);
    let s = c.connector("stripe").unwrap();
    assert!(s.enabled);
    assert!(!s.paused);
    assert!(s.secret.is_empty());
    assert_eq!(s.scheme, None);
    assert_eq!(s.hmac, None);
    assert_eq!(s.public_url, None);
    assert_eq!(s.tolerance, Duration::from_secs(300));
    assert!(s.allowed_hosts.is_empty());
    assert_eq!(s.outbound_secret, None);
    assert_eq!(s.retry, c.retry);
    assert!(s.settings.is_empty());
    let d = ConnectorConfig {
        id: "stripe".into(),
        plugin: "stripe.wasm".into(),
        ..ConnectorConfig::default()
    };
    assert_eq!(*s, d);
    assert!(c.connector("nope").is_none());
}

#[test]
fn every_default_key_is_documented_in_the_reference() {
    // Each uncommented key of the defaults file has a comment line right above it.
    let lines: Vec<&str> = DEFAULT_CONFIG_TOML.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.contains(" = ") && !line.starts_with('#') {
            assert!(
                lines[i - 1].starts_with('#'),
                "`{line}` in config.default.toml has no comment above it"
            );
        }
    }
    for key in [
        "admin_token",
        "nats_url",
        "nats_token",
        "nats_user",
        "nats_password",
        "nats_creds",
        "cache_dir",
        "enabled",
        "paused",
        "secret",
        "scheme",
        "tolerance",
        "public_url",
        "allowed_hosts",
        "outbound_secret",
        "header",
        "encoding",
        "prefix",
    ] {
        assert!(
            DEFAULT_CONFIG_TOML.contains(&format!("# {key} = ")),
            "{key} is not in the reference"
        );
    }
}

// ---- whole files ----------------------------------------------------------------------------

fn example_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/switchyard.toml")
}

/// The example's commented-out tables, uncommented, load too: what it offers to paste works.
#[test]
fn example_config_parses_with_every_commented_table_uncommented() {
    let text = std::fs::read_to_string(example_path()).unwrap();
    let toml_line = |line: &str| {
        line.starts_with('[')
            || line.split_once(" = ").is_some_and(|(key, _)| {
                !key.is_empty()
                    && key
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            })
    };
    let uncommented: String = text
        .lines()
        .map(|line| match line.strip_prefix("# ") {
            Some(rest) if toml_line(rest) => rest,
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n");
    let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let vars = env(&[
        ("SWITCHYARD_ADMIN_TOKEN", "admin-token-value"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_example"),
        ("BACKEND_WEBHOOK_SECRET", secret),
        ("MAILCHIMP_WEBHOOK_TOKEN", "token"),
        ("WHMCS_WEBHOOK_SECRET", secret),
        ("XENFORO_API_KEY", "key"),
        ("EVENTS_WEBHOOK_SECRET", secret),
    ]);
    let c =
        Config::from_toml_str(&uncommented, &vars).unwrap_or_else(|e| panic!("{e}\n{uncommented}"));
    let ids: Vec<&str> = c.connectors.iter().map(|c| c.id.as_str()).collect();
    assert_eq!(ids, ["stripe", "mailchimp", "whmcs", "events"]);
    assert!(c.connectors[0].outbound_secret.is_some());
    assert_eq!(c.destinations.len(), 1);
    assert_eq!(c.destinations[0].rate_limit, Some(50));
    assert_eq!(
        c.alerts.url.as_deref(),
        Some("http://127.0.0.1:9000/alerts")
    );
}

#[test]
fn example_config_parses() {
    let vars = env(&[
        ("SWITCHYARD_ADMIN_TOKEN", "admin-token-value"),
        ("STRIPE_WEBHOOK_SECRET", "whsec_example"),
    ]);
    let c = Config::load_with_env(&example_path(), &vars).unwrap();
    assert_eq!(c.server.listen, "127.0.0.1:8080".parse().unwrap());
    assert_eq!(
        c.server.admin_token.as_ref().unwrap().expose(),
        "admin-token-value"
    );
    assert_eq!(c.storage.path, PathBuf::from("data"));
    assert_eq!(c.plugins.dir, PathBuf::from("dist/plugins"));
    assert_eq!(c.connectors.len(), 1);
    let s = c.connector("stripe").unwrap();
    assert_eq!(s.plugin, "stripe.wasm");
    assert_eq!(s.secret, vec![Secret::new("whsec_example")]);
    assert_eq!(s.allowed_hosts, ["http://127.0.0.1:9000"]);
    assert_eq!(s.settings["forward_url"], "http://127.0.0.1:9000/billing");
    assert_eq!(s.settings["events"], r#"["*"]"#);
}

#[test]
fn example_config_without_its_env_vars_says_which_is_missing() {
    let e = Config::load_with_env(&example_path(), &env(&[]))
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "server.admin_token: environment variable SWITCHYARD_ADMIN_TOKEN is not set"
    );
    let vars = env(&[("SWITCHYARD_ADMIN_TOKEN", "t")]);
    let e = Config::load_with_env(&example_path(), &vars)
        .unwrap_err()
        .to_string();
    assert_eq!(
        e,
        "connector[0] (stripe).secret: environment variable STRIPE_WEBHOOK_SECRET is not set"
    );
}

#[test]
fn full_config_parses() {
    let c = parse_env(
        r#"
[server]
listen = "0.0.0.0:9090"
admin_token = "literal-admin"
max_body_bytes = 2048
workers = 3
shutdown_timeout = "30s"
admin_rate_limit = 60

[storage]
backend = "nats"
path = "/var/lib/switchyard"
retention_days = 7
nats_url = "nats://127.0.0.1:4222"
dedupe_window = "1day"
durable = false

[plugins]
dir = "plugins"
watch = false
deadline = "500ms"
max_memory_bytes = 1048576
cache_dir = "cache"

[retry]
max_attempts = 3
initial_backoff = "1s"
max_backoff = "1m"
jitter = 0.0
timeout = "5s"

[[connector]]
id = "stripe"
plugin = "stripe.wasm"
enabled = true
paused = true
secret = ["env:OLD", "env:NEW"]
scheme = "stripe"
tolerance = "10m"
allowed_hosts = ["http://127.0.0.1:9000", "HTTPS://API.Stripe.com:443/"]
outbound_secret = "env:OUT"
[connector.retry]
max_attempts = 2
[connector.settings]
forward_url = "http://127.0.0.1:9000/billing"
events = ["invoice.*", "customer.*"]
refetch = true

[[connector]]
id = "generic"
plugin = "generic.wasm"
enabled = false
secret = "abc"
scheme = "hmac-sha256"
[connector.hmac]
header = "X-Signature"
encoding = "base64"
prefix = "sha256="

[[connector]]
id = "mandrill"
plugin = "mandrill.wasm"
scheme = "mandrill"
secret = "key"
public_url = "https://example.com/hooks/mandrill"
"#,
        &[
            ("OLD", "whsec_old"),
            ("NEW", "whsec_new"),
            ("OUT", "whsec_b3V0"),
        ],
    );
    assert_eq!(c.server.listen, "0.0.0.0:9090".parse().unwrap());
    assert_eq!(c.server.admin_token, Some(Secret::new("literal-admin")));
    assert_eq!(c.server.workers, 3);
    assert_eq!(c.server.worker_count(), 3);
    assert_eq!(c.server.admin_rate_limit, 60);
    assert_eq!(c.storage.backend, Backend::Nats);
    assert_eq!(c.storage.dedupe_window, Duration::from_secs(86400));
    assert!(!c.storage.durable);
    assert_eq!(c.plugins.deadline, Duration::from_millis(500));
    assert_eq!(c.plugins.cache_dir, Some(PathBuf::from("cache")));
    let s = c.connector("stripe").unwrap();
    assert!(s.paused);
    assert_eq!(
        s.secret,
        vec![Secret::new("whsec_old"), Secret::new("whsec_new")]
    );
    assert_eq!(s.tolerance, Duration::from_secs(600));
    assert_eq!(
        s.allowed_hosts,
        ["http://127.0.0.1:9000", "https://api.stripe.com"]
    );
    assert_eq!(s.outbound_secret, Some(Secret::new("whsec_b3V0")));
    assert_eq!(s.retry.max_attempts, 2);
    assert_eq!(s.retry.initial_backoff, Duration::from_secs(1));
    assert_eq!(s.settings["refetch"], "true");
    let g = c.connector("generic").unwrap();
    assert!(!g.enabled);
    assert_eq!(
        g.hmac,
        Some(HmacConfig {
            header: "X-Signature".into(),
            encoding: HmacEncoding::Base64,
            prefix: "sha256=".into(),
        })
    );
    let m = c.connector("mandrill").unwrap();
    assert_eq!(
        m.public_url.as_deref(),
        Some("https://example.com/hooks/mandrill")
    );
}

#[test]
fn hmac_encoding_and_prefix_default() {
    let c = parse(&connector(
        "secret = \"k\"\nscheme = \"hmac-sha256\"\n[connector.hmac]\nheader = \"X-Sig\"\n",
    ));
    let hmac = c.connectors[0].hmac.clone().unwrap();
    assert_eq!(hmac.encoding, HmacEncoding::Hex);
    assert_eq!(hmac.prefix, "");
}

#[test]
fn design_doc_example_parses() {
    let c = parse_env(
        r#"
[server]
listen = "127.0.0.1:8080"
admin_token = "env:SWITCHYARD_ADMIN_TOKEN"   # "env:VAR", "file:PATH" or a literal
max_body_bytes = 1048576

[storage]
backend = "sled"          # embedded default; "nats" for a cluster (JetStream)
path = "data"
retention_days = 30
# nats_url = "nats://127.0.0.1:4222"

[plugins]
dir = "dist/plugins"      # watched: a new or replaced .wasm goes live without a restart
watch = true

[retry]                   # defaults; a connector may override with [connector.retry]
max_attempts = 10
initial_backoff = "2s"
max_backoff = "1h"
jitter = 0.2

[[connector]]
id = "stripe"             # route: POST /hooks/stripe
plugin = "stripe.wasm"    # relative to plugins.dir
enabled = true            # false: 404, nothing stored
paused = false            # true: accept and store, dispatch nothing until resumed
secret = "env:STRIPE_WEBHOOK_SECRET"
# scheme = "stripe"       # overrides the connector's declared scheme
allowed_hosts = ["http://127.0.0.1:9000"]
outbound_secret = "env:BACKEND_WEBHOOK_SECRET"   # sign deliveries (Standard Webhooks)
[connector.settings]      # free-form, read by the connector
forward_url = "http://127.0.0.1:9000/billing"
"#,
        &[
            ("SWITCHYARD_ADMIN_TOKEN", "a"),
            ("STRIPE_WEBHOOK_SECRET", "b"),
            ("BACKEND_WEBHOOK_SECRET", "whsec_Yw=="),
        ],
    );
    assert_eq!(
        c.connectors[0].outbound_secret,
        Some(Secret::new("whsec_Yw=="))
    );
}

// ---- unknown keys ---------------------------------------------------------------------------

#[test]
fn unknown_key_at_top_level() {
    assert_eq!(
        error("[servr]\nlisten = \"127.0.0.1:1\"\n"),
        "unknown key `servr` in the top-level table; did you mean `server`?"
    );
    assert_eq!(
        error("[[connectors]]\nid = \"a\"\n"),
        "unknown key `connectors` in the top-level table; did you mean `connector`?"
    );
    let e = error("colour = \"blue\"\n");
    assert!(
        e.starts_with("unknown key `colour` in the top-level table"),
        "{e}"
    );
}

#[test]
fn unknown_key_in_server() {
    assert_eq!(
        error("[server]\nlistn = \"127.0.0.1:1\"\n"),
        "unknown key `listn` in [server]; did you mean `listen`?"
    );
    let e = error("[server]\nfoo = 1\n");
    assert!(
        e.starts_with("unknown key `foo` in [server]; expected one of `listen`"),
        "{e}"
    );
}

#[test]
fn unknown_key_in_other_sections() {
    assert!(
        error("[storage]\nretention = 3\n").starts_with("unknown key `retention` in [storage]")
    );
    assert!(
        error("[plugins]\ndirectory = \"x\"\n").starts_with("unknown key `directory` in [plugins]")
    );
    assert!(error("[retry]\nattempts = 3\n").starts_with("unknown key `attempts` in [retry]"));
}

#[test]
fn unknown_key_in_connector() {
    assert_eq!(
        error(&connector("secrt = \"whsec_x\"\n")),
        "unknown key `secrt` in connector[0] (stripe); did you mean `secret`?"
    );
    let e = error(&connector("[connector.retry]\nmax_attemps = 3\n"));
    assert_eq!(
        e,
        "unknown key `max_attemps` in connector[0] (stripe).retry; did you mean `max_attempts`?"
    );
    let e = error(&connector(
        "scheme = \"hmac-sha256\"\nsecret = \"k\"\n[connector.hmac]\nheader = \"X\"\nencode = \"hex\"\n",
    ));
    assert!(
        e.starts_with("unknown key `encode` in connector[0] (stripe).hmac"),
        "{e}"
    );
    // The second connector is named by its index and id.
    let e = error(&format!(
        "{MINIMAL_CONNECTOR}\n[[connector]]\nid = \"mc\"\nplugin = \"mc.wasm\"\nenabeld = true\n"
    ));
    assert!(
        e.starts_with("unknown key `enabeld` in connector[1] (mc)"),
        "{e}"
    );
}

#[test]
fn settings_accept_any_key() {
    let c = parse(&connector("[connector.settings]\nwhatever_key = \"v\"\n"));
    assert_eq!(c.connectors[0].settings["whatever_key"], "v");
}

#[test]
fn missing_required_connector_keys() {
    assert_eq!(
        error("[[connector]]\nid = \"x\"\n"),
        "connector[0] (x).plugin: is required"
    );
    assert_eq!(
        error("[[connector]]\nplugin = \"x.wasm\"\n"),
        "connector[0].id: is required"
    );
}

// ---- types and formats ----------------------------------------------------------------------

#[test]
fn wrong_types_name_the_key() {
    assert_eq!(
        error("[server]\nmax_body_bytes = \"big\"\n"),
        "server.max_body_bytes: expected a whole number, 0 or more, found a string"
    );
    assert_eq!(
        error("[storage]\nbackend = \"postgres\"\n"),
        "storage.backend: unknown value `postgres`, expected `sled` or `nats`"
    );
    assert_eq!(
        error("[retry]\nmax_attempts = -1\n"),
        "retry.max_attempts: expected a whole number, 0 or more, found `-1`"
    );
    assert_eq!(
        error("[storage]\nbackend = 3\n"),
        r#"storage.backend: expected "sled" or "nats", found an integer"#
    );
    assert_eq!(parse("[retry]\njitter = 1\n").retry.jitter, 1.0);
    assert_eq!(
        error("[connector]\nid = \"a\"\nplugin = \"a.wasm\"\n"),
        "connector: write each connector as [[connector]] (double brackets): it is a list"
    );
    assert_eq!(
        error("server = 1\n"),
        "server: expected a table, found an integer"
    );
    assert_eq!(
        error(&connector("allowed_hosts = \"http://x\"\n")),
        "connector[0] (stripe).allowed_hosts: expected an array, found a string"
    );
    let e = error(&connector("enabled = \"yes\"\n"));
    assert!(
        e.starts_with("connector[0] (stripe).enabled: expected true or false"),
        "{e}"
    );
    let e = error(&connector(
        "scheme = \"hmac-sha256\"\nsecret = \"k\"\n[connector.hmac]\nheader = \"X\"\nencoding = \"b64\"\n",
    ));
    assert!(
        e.starts_with("connector[0] (stripe).hmac.encoding: unknown value `b64`"),
        "{e}"
    );
}

#[test]
fn durations_are_humantime() {
    let c = parse("[retry]\ninitial_backoff = \"1s 500ms\"\nmax_backoff = \"2h\"\n");
    assert_eq!(c.retry.initial_backoff, Duration::from_millis(1500));
    assert_eq!(c.retry.max_backoff, Duration::from_secs(7200));
    let e = error("[retry]\ntimeout = 15\n");
    assert_eq!(
        e,
        r#"retry.timeout: a duration needs a unit and quotes, e.g. "15s""#
    );
    let e = error("[plugins]\ndeadline = \"ten seconds\"\n");
    assert!(
        e.starts_with("plugins.deadline: `ten seconds` is not a duration"),
        "{e}"
    );
    let e = error(&connector("[connector.retry]\nmax_backoff = \"soon\"\n"));
    assert!(
        e.starts_with("connector[0] (stripe).retry.max_backoff: `soon` is not a duration"),
        "{e}"
    );
}

#[test]
fn listen_must_be_an_address() {
    assert_eq!(
        error("[server]\nlisten = \"localhost\"\n"),
        r#"server.listen: `localhost` is not an IP address and port such as "127.0.0.1:8080" or "[::]:8080""#
    );
    assert_eq!(
        parse("[server]\nlisten = \"[::1]:0\"\n").server.listen,
        "[::1]:0".parse().unwrap()
    );
}

#[test]
fn toml_syntax_error_has_position_and_no_line_text() {
    let e = error("[server]\nadmin_token = \"s3cr3t-token\nlisten = 1\n");
    assert!(e.starts_with("config:2:"), "{e}");
    assert!(e.contains("invalid TOML"), "{e}");
    assert!(!e.contains("s3cr3t"), "{e}");
}

// ---- secrets --------------------------------------------------------------------------------

#[test]
fn secret_string_or_list() {
    let c = parse(&connector("secret = \"whsec_one\"\n"));
    assert_eq!(c.connectors[0].secret, vec![Secret::new("whsec_one")]);
    let c = parse(&connector("secret = [\"whsec_one\", \"whsec_two\"]\n"));
    assert_eq!(
        c.connectors[0].secret,
        vec![Secret::new("whsec_one"), Secret::new("whsec_two")]
    );
    let c = parse(&connector("secret = []\n"));
    assert!(c.connectors[0].secret.is_empty());
    let e = error(&connector("secret = 12345678\n"));
    assert_eq!(
        e,
        "connector[0] (stripe).secret: expected a string or an array of strings (several secrets during rotation)"
    );
    let e = error(&connector("secret = [\"ok\", 987654]\n"));
    assert!(
        e.starts_with("connector[0] (stripe).secret[1]: expected a string"),
        "{e}"
    );
    assert!(!e.contains("987654"));
}

#[test]
fn env_references() {
    let toml = connector("secret = [\"literal\", \"env:STRIPE_WEBHOOK_SECRET\"]\n");
    let c = parse_env(&toml, &[("STRIPE_WEBHOOK_SECRET", "whsec_from_env")]);
    assert_eq!(c.connectors[0].secret[1].expose(), "whsec_from_env");

    assert_eq!(
        error(&connector("secret = \"env:STRIPE_WEBHOOK_SECRET\"\n")),
        "connector[0] (stripe).secret: environment variable STRIPE_WEBHOOK_SECRET is not set"
    );
    assert_eq!(
        error(&toml),
        "connector[0] (stripe).secret[1]: environment variable STRIPE_WEBHOOK_SECRET is not set"
    );
    assert_eq!(
        error_env(&toml, &[("STRIPE_WEBHOOK_SECRET", "")]),
        "connector[0] (stripe).secret[1]: environment variable STRIPE_WEBHOOK_SECRET is set but empty"
    );
    assert_eq!(
        error("[server]\nadmin_token = \"env:\"\n"),
        "server.admin_token: `env:` needs a variable name"
    );
    let c = parse_env(
        &connector("outbound_secret = \"env:OUT\"\n"),
        &[("OUT", "whsec_b3V0")],
    );
    assert_eq!(
        c.connectors[0].outbound_secret,
        Some(Secret::new("whsec_b3V0"))
    );
    assert_eq!(
        error(&connector("outbound_secret = \"env:OUT\"\n")),
        "connector[0] (stripe).outbound_secret: environment variable OUT is not set"
    );
}

#[test]
fn file_references() {
    let dir = tempfile::tempdir().unwrap();
    let secret_path = dir.path().join("stripe.secret");
    std::fs::write(&secret_path, "whsec_from_file\n\n").unwrap();
    let toml = connector(&format!("secret = \"file:{}\"\n", secret_path.display()));
    let c = parse(&toml);
    assert_eq!(c.connectors[0].secret, vec![Secret::new("whsec_from_file")]);

    std::fs::write(&secret_path, "crlf\r\n").unwrap();
    assert_eq!(parse(&toml).connectors[0].secret[0].expose(), "crlf");

    std::fs::write(&secret_path, "\n").unwrap();
    let e = error(&toml);
    assert_eq!(
        e,
        format!(
            "connector[0] (stripe).secret: file {} is empty",
            secret_path.display()
        )
    );

    let missing = dir.path().join("nope");
    let e = error(&format!(
        "[server]\nadmin_token = \"file:{}\"\n",
        missing.display()
    ));
    assert!(
        e.starts_with(&format!(
            "server.admin_token: cannot read file {}: ",
            missing.display()
        )),
        "{e}"
    );
}

#[test]
fn relative_file_references_are_relative_to_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secrets")).unwrap();
    std::fs::write(dir.path().join("secrets/admin"), "admin-from-file\n").unwrap();
    let config_path = dir.path().join("switchyard.toml");
    std::fs::write(
        &config_path,
        "[server]\nadmin_token = \"file:secrets/admin\"\n[storage]\npath = \"rel/data\"\n",
    )
    .unwrap();
    let c = Config::load_with_env(&config_path, &env(&[])).unwrap();
    assert_eq!(c.server.admin_token, Some(Secret::new("admin-from-file")));
    // Data paths stay relative: they are relative to the working directory.
    assert_eq!(c.storage.path, PathBuf::from("rel/data"));
}

#[test]
fn missing_config_file() {
    let e = Config::load(Path::new("/nonexistent/switchyard.toml")).unwrap_err();
    assert!(matches!(e, ConfigError::Read { .. }));
    assert!(
        e.to_string()
            .starts_with("cannot read config file /nonexistent/switchyard.toml: "),
        "{e}"
    );
}

#[test]
fn load_reads_the_process_environment() {
    // Only reads the process environment: a variable every test process has, never set here.
    let dir = tempfile::tempdir().unwrap();
    let config_path = dir.path().join("switchyard.toml");
    std::fs::write(&config_path, "[server]\nadmin_token = \"env:PATH\"\n").unwrap();
    let c = Config::load(&config_path).unwrap();
    assert_eq!(
        c.server.admin_token.unwrap().expose(),
        std::env::var("PATH").unwrap()
    );
}

// ---- environment overrides ------------------------------------------------------------------

#[test]
fn env_overrides_sections() {
    let c = parse_env(
        "[server]\nlisten = \"127.0.0.1:1\"\n[retry]\nmax_attempts = 4\n",
        &[
            ("SWITCHYARD_SERVER_LISTEN", "0.0.0.0:9999"),
            ("SWITCHYARD_SERVER_MAX_BODY_BYTES", "4096"),
            ("SWITCHYARD_RETRY_MAX_ATTEMPTS", "7"),
            ("SWITCHYARD_RETRY_JITTER", "0.5"),
            ("SWITCHYARD_RETRY_INITIAL_BACKOFF", "3s"),
            ("SWITCHYARD_STORAGE_PATH", "/tmp/data"),
            ("SWITCHYARD_STORAGE_DURABLE", "false"),
            ("SWITCHYARD_PLUGINS_DIR", "123"),
        ],
    );
    assert_eq!(c.server.listen, "0.0.0.0:9999".parse().unwrap());
    assert_eq!(c.server.max_body_bytes, 4096);
    assert_eq!(c.retry.max_attempts, 7);
    assert_eq!(c.retry.jitter, 0.5);
    assert_eq!(c.retry.initial_backoff, Duration::from_secs(3));
    assert_eq!(c.storage.path, PathBuf::from("/tmp/data"));
    assert!(!c.storage.durable);
    assert_eq!(c.plugins.dir, PathBuf::from("123"));
}

#[test]
fn env_override_of_a_secret_is_resolved_and_stays_text() {
    let c = parse_env("", &[("SWITCHYARD_SERVER_ADMIN_TOKEN", "123456")]);
    assert_eq!(c.server.admin_token, Some(Secret::new("123456")));
    let c = parse_env(
        "",
        &[
            ("SWITCHYARD_SERVER_ADMIN_TOKEN", "env:MY_TOKEN"),
            ("MY_TOKEN", "tok"),
        ],
    );
    assert_eq!(c.server.admin_token, Some(Secret::new("tok")));
}

#[test]
fn other_switchyard_variables_are_ignored() {
    let c = parse_env(
        "",
        &[
            ("SWITCHYARD_ADMIN_TOKEN", "not-an-override"),
            ("SWITCHYARD_CONFIG", "x.toml"),
            ("SWITCHYARD_CONNECTOR_ID", "x"),
            ("SWITCHYARD_LOG", "debug"),
            ("SWITCHYARD_SERVER_", "x"),
            ("OTHER_SERVER_LISTEN", "nonsense"),
        ],
    );
    assert_eq!(c, Config::default());
}

#[test]
fn env_override_errors_name_the_variable() {
    assert_eq!(
        error_env("", &[("SWITCHYARD_SERVER_LISTN", "0.0.0.0:1")]),
        "unknown key `listn` in [server]; it was set by environment variable SWITCHYARD_SERVER_LISTN"
    );
    assert_eq!(
        error_env("", &[("SWITCHYARD_SERVER_MAX_BODY_BYTES", "lots")]),
        "server.max_body_bytes: expected a whole number, 0 or more, found a string (set by environment variable SWITCHYARD_SERVER_MAX_BODY_BYTES)"
    );
    let e = error_env("", &[("SWITCHYARD_SERVER_LISTEN", "nowhere")]);
    assert!(
        e.ends_with("(set by environment variable SWITCHYARD_SERVER_LISTEN)"),
        "{e}"
    );
}

// ---- per-connector retry --------------------------------------------------------------------

#[test]
fn connector_retry_falls_back_to_top_level() {
    let c = parse_env(
        &format!(
            "[retry]\nmax_attempts = 4\ninitial_backoff = \"1s\"\n{MINIMAL_CONNECTOR}\
             [connector.retry]\nmax_backoff = \"5m\"\njitter = 0.0\n\
             [[connector]]\nid = \"other\"\nplugin = \"other.wasm\"\n"
        ),
        &[("SWITCHYARD_RETRY_TIMEOUT", "20s")],
    );
    let r = &c.connector("stripe").unwrap().retry;
    assert_eq!(r.max_attempts, 4);
    assert_eq!(r.initial_backoff, Duration::from_secs(1));
    assert_eq!(r.max_backoff, Duration::from_secs(300));
    assert_eq!(r.jitter, 0.0);
    assert_eq!(r.timeout, Duration::from_secs(20));
    assert_eq!(c.connector("other").unwrap().retry, c.retry);
}

// ---- settings -------------------------------------------------------------------------------

#[test]
fn settings_values() {
    let c = parse_env(
        &connector(
            r#"
[connector.settings]
forward_url = "http://127.0.0.1:9000/billing"
api_key = "env:STRIPE_API_KEY"
events = ["invoice.*", "customer.created"]
refetch = true
limit = 5
ratio = 0.5
since = 1979-05-27T07:32:00Z
group_map = { 1 = [2, 3], gold = [4] }
nested = { when = 1979-05-27 }
"dotted.key" = 1
"#,
        ),
        &[("STRIPE_API_KEY", "sk_test_x")],
    );
    let s = &c.connectors[0].settings;
    assert_eq!(s["forward_url"], "http://127.0.0.1:9000/billing");
    assert_eq!(s["api_key"], "sk_test_x");
    assert_eq!(s["events"], r#"["invoice.*","customer.created"]"#);
    assert_eq!(s["refetch"], "true");
    assert_eq!(s["limit"], "5");
    assert_eq!(s["ratio"], "0.5");
    assert_eq!(s["since"], "1979-05-27T07:32:00Z");
    assert_eq!(s["group_map"], r#"{"1":[2,3],"gold":[4]}"#);
    assert_eq!(s["nested"], r#"{"when":"1979-05-27"}"#);
    assert_eq!(s["dotted.key"], "1");
    assert_eq!(
        error(&connector("[connector.settings]\n\"x y\" = \"env:NOPE\"\n")),
        r#"connector[0] (stripe).settings."x y": environment variable NOPE is not set"#
    );

    assert_eq!(
        error(&connector(
            "[connector.settings]\napi_key = \"env:STRIPE_API_KEY\"\n"
        )),
        "connector[0] (stripe).settings.api_key: environment variable STRIPE_API_KEY is not set"
    );
    // Settings values are not in Debug output: a resolved reference may be an API key.
    let debug = format!("{c:?}");
    assert!(!debug.contains("sk_test_x"), "{debug}");
    assert!(debug.contains("api_key"), "{debug}");
}

// ---- validate() -----------------------------------------------------------------------------

#[test]
fn validate_server_storage_plugins() {
    assert_eq!(
        error("[server]\nmax_body_bytes = 0\n"),
        "server.max_body_bytes: must be at least 1"
    );
    assert_eq!(
        error("[server]\nadmin_token = \"\"\n"),
        "server.admin_token: must not be empty"
    );
    assert_eq!(
        error("[storage]\nretention_days = 0\n"),
        "storage.retention_days: must be at least 1"
    );
    assert_eq!(
        error("[server]\nadmin_rate_limit = 0\n"),
        "server.admin_rate_limit: must be at least 1"
    );
    assert_eq!(
        error("[storage]\ndedupe_window = \"30s\"\n"),
        "storage.dedupe_window: must be at least 1 minute"
    );
    assert_eq!(
        error("[storage]\nbackend = \"nats\"\n"),
        r#"storage.nats_url: is required when backend = "nats" (e.g. "nats://127.0.0.1:4222")"#
    );
    assert_eq!(
        error("[storage]\npath = \"\"\n"),
        "storage.path: must not be empty"
    );
    assert_eq!(
        error("[plugins]\ndir = \"\"\n"),
        "plugins.dir: must not be empty"
    );
    assert_eq!(
        error("[plugins]\ndeadline = \"0s\"\n"),
        "plugins.deadline: must be greater than 0"
    );
    assert_eq!(
        error("[plugins]\nmax_memory_bytes = 1000\n"),
        "plugins.max_memory_bytes: must be at least 65536 (one Wasm page)"
    );
}

#[test]
fn validate_retry() {
    assert_eq!(
        error("[retry]\nmax_attempts = 0\n"),
        "retry.max_attempts: must be at least 1"
    );
    assert_eq!(
        error("[retry]\njitter = 1.5\n"),
        "retry.jitter: must be between 0 and 1"
    );
    assert_eq!(
        error("[retry]\njitter = -0.1\n"),
        "retry.jitter: must be between 0 and 1"
    );
    assert_eq!(
        error("[retry]\njitter = nan\n"),
        "retry.jitter: must be between 0 and 1"
    );
    assert!(parse("[retry]\njitter = 1.0\n").validate().is_ok());
    assert_eq!(
        error("[retry]\ninitial_backoff = \"0s\"\n"),
        "retry.initial_backoff: must be greater than 0"
    );
    assert_eq!(
        error("[retry]\nmax_backoff = \"0s\"\n"),
        "retry.max_backoff: must be greater than 0"
    );
    assert_eq!(
        error("[retry]\ninitial_backoff = \"2h\"\n"),
        "retry.initial_backoff: 2h is longer than max_backoff (1h)"
    );
    assert_eq!(
        error("[retry]\ntimeout = \"0s\"\n"),
        "retry.timeout: must be greater than 0"
    );
    assert_eq!(
        error(&connector("[connector.retry]\nmax_attempts = 0\n")),
        "connector[0] (stripe).retry.max_attempts: must be at least 1"
    );
    assert_eq!(
        error(&connector("[connector.retry]\ninitial_backoff = \"3h\"\n")),
        "connector[0] (stripe).retry.initial_backoff: 3h is longer than max_backoff (1h)"
    );
}

#[test]
fn validate_connector_ids() {
    let dup = format!("{MINIMAL_CONNECTOR}{MINIMAL_CONNECTOR}");
    assert_eq!(
        error(&dup),
        "connector[1] (stripe).id: duplicate id `stripe` (also used by connector[0])"
    );
    assert_eq!(
        error("[[connector]]\nid = \"\"\nplugin = \"a.wasm\"\n"),
        "connector[0].id: must not be empty"
    );
    for bad in [
        "Stripe",
        "-stripe",
        "_x",
        "a b",
        "a/b",
        "é",
        &"a".repeat(65),
    ] {
        let e = error(&format!(
            "[[connector]]\nid = \"{bad}\"\nplugin = \"a.wasm\"\n"
        ));
        assert!(
            e.starts_with(&format!("connector[0] ({bad}).id: must be 1 to 64 of a-z")),
            "{bad}: {e}"
        );
    }
    for good in ["a", "0", "stripe-live_2", &"a".repeat(64)] {
        parse(&format!(
            "[[connector]]\nid = \"{good}\"\nplugin = \"a.wasm\"\n"
        ));
    }
}

#[test]
fn validate_plugin_names() {
    for bad in ["stripe", "stripe.wat", ".wasm", "stripe.wasm.bak"] {
        assert_eq!(
            error(&format!("[[connector]]\nid = \"s\"\nplugin = \"{bad}\"\n")),
            "connector[0] (s).plugin: must be a file name ending in .wasm",
            "{bad}"
        );
    }
    for bad in [
        "../stripe.wasm",
        "sub/stripe.wasm",
        "/abs/stripe.wasm",
        "a\\\\b.wasm",
        "..wasm",
    ] {
        let e = error(&format!("[[connector]]\nid = \"s\"\nplugin = \"{bad}\"\n"));
        assert!(
            e.starts_with("connector[0] (s).plugin: must be a file name inside plugins.dir"),
            "{bad}: {e}"
        );
    }
}

#[test]
fn validate_schemes() {
    let e = error(&connector("scheme = \"md5\"\nsecret = \"k\"\n"));
    assert!(
        e.starts_with("connector[0] (stripe).scheme: unknown scheme `md5`; known: `stripe`"),
        "{e}"
    );
    assert_eq!(
        e,
        "connector[0] (stripe).scheme: unknown scheme `md5`; known: `stripe`, \
         `standard-webhooks`, `github`, `hmac-sha256`, `mandrill`, `token`, `none`"
    );
    assert_eq!(
        error(&connector("scheme = 1\n")),
        "connector[0] (stripe).scheme: expected a string, found an integer"
    );
    for name in SchemeName::ALL {
        assert_eq!(name.as_str().parse::<SchemeName>(), Ok(name));
        let c = parse(&connector(&format!(
            "scheme = \"{name}\"\nsecret = \"k\"\n{}",
            match name {
                SchemeName::HmacSha256 => "[connector.hmac]\nheader = \"X\"\n",
                SchemeName::Mandrill => "public_url = \"https://x.example/\"\n",
                _ => "",
            }
        )));
        assert_eq!(c.connector("stripe").unwrap().scheme, Some(name));
        // The same scheme as the verifier's own table gives for the name.
        let hmac = || {
            Some(crate::verify::HmacParams {
                header: "X".into(),
                encoding: crate::verify::Encoding::Hex,
                prefix: String::new(),
            })
        };
        let url = || Some("https://x.example/".to_owned());
        let scheme = name.scheme(hmac(), url()).unwrap();
        assert_eq!(
            Ok(&scheme),
            crate::verify::Scheme::from_name(name.as_str(), hmac(), url()).as_ref()
        );
        assert_eq!(scheme.name(), name.as_str());
    }
    assert_eq!(
        SchemeName::HmacSha256.scheme(None, None),
        Err(MissingParams::Hmac)
    );
    assert_eq!(
        SchemeName::Mandrill.scheme(None, None),
        Err(MissingParams::PublicUrl)
    );
    for scheme in ["stripe", "standard-webhooks", "github", "token"] {
        parse(&connector(&format!(
            "scheme = \"{scheme}\"\nsecret = \"k\"\n"
        )));
        assert_eq!(
            error(&connector(&format!("scheme = \"{scheme}\"\n"))),
            format!("connector[0] (stripe).secret: scheme `{scheme}` needs a secret")
        );
    }
    parse(&connector("scheme = \"none\"\n"));
    assert!(
        error(&connector("scheme = \"hmac-sha256\"\nsecret = \"k\"\n"))
            .starts_with("connector[0] (stripe).hmac: is required for scheme \"hmac-sha256\"")
    );
    assert!(
        error(&connector(
            "scheme = \"github\"\nsecret = \"k\"\n[connector.hmac]\nheader = \"X\"\n"
        ))
        .starts_with("connector[0] (stripe).hmac: is only used by scheme \"hmac-sha256\"")
    );
    assert!(
        error(&connector(
            "scheme = \"hmac-sha256\"\nsecret = \"k\"\n[connector.hmac]\nheader = \"X Sig\"\n"
        ))
        .starts_with("connector[0] (stripe).hmac.header: must be an HTTP header name")
    );
    assert!(
        error(&connector(
            "scheme = \"hmac-sha256\"\nsecret = \"k\"\n[connector.hmac]\n"
        ))
        .starts_with("connector[0] (stripe).hmac.header: is required")
    );
    assert!(
        error(&connector("scheme = \"mandrill\"\nsecret = \"k\"\n"))
            .starts_with("connector[0] (stripe).public_url: is required for scheme \"mandrill\"")
    );
    assert_eq!(
        error(&connector(
            "scheme = \"mandrill\"\nsecret = \"k\"\npublic_url = \"not a url\"\n"
        )),
        "connector[0] (stripe).public_url: must be an http:// or https:// URL"
    );
    assert!(
        error(&connector(
            "scheme = \"stripe\"\nsecret = \"k\"\npublic_url = \"https://x.example/\"\n"
        ))
        .starts_with("connector[0] (stripe).public_url: is only used by scheme \"mandrill\"")
    );
    // Without an explicit scheme the plugin declares one; hmac and public_url may be given.
    parse(&connector(
        "public_url = \"https://x.example/hooks/stripe\"\n[connector.hmac]\nheader = \"X\"\n",
    ));
    assert_eq!(
        error(&connector("tolerance = \"0s\"\n")),
        "connector[0] (stripe).tolerance: must be greater than 0"
    );
    assert_eq!(
        error(&connector("secret = [\"a\", \"\"]\n")),
        "connector[0] (stripe).secret[1]: must not be empty"
    );
    assert_eq!(
        error(&connector("outbound_secret = \"\"\n")),
        "connector[0] (stripe).outbound_secret: must not be empty"
    );
    // It signs every delivery: one that cannot sign is refused at load, not found out by
    // deliveries sent unsigned; the message never holds the secret.
    let e = error(&connector("outbound_secret = \"whsec_not base64!\"\n"));
    assert_eq!(
        e,
        "connector[0] (stripe).outbound_secret: secret is unusable: standard-webhooks \
         secret is not `whsec_` followed by base64"
    );
    assert!(!e.contains("not base64!"), "{e}");
}

#[test]
fn validate_allowed_hosts() {
    let c = parse(&connector(
        "allowed_hosts = [\"*\", \"http://127.0.0.1:9000\", \"https://API.stripe.com/\", \"http://[::1]:80\"]\n",
    ));
    assert_eq!(
        c.connectors[0].allowed_hosts,
        [
            "*",
            "http://127.0.0.1:9000",
            "https://api.stripe.com",
            "http://[::1]"
        ]
    );
    for (bad, why) in [
        ("ftp://example.com", "the scheme must be http or https"),
        ("http://example.com/path", "must be an origin only"),
        ("http://example.com?q=1", "must be an origin only"),
        ("example.com", "is not an origin such as"),
        (
            "https://*.stripe.com",
            "wildcards inside a host are not supported",
        ),
        (
            "https://user:pw@example.com",
            "must not contain a user name or password",
        ),
    ] {
        let e = error(&connector(&format!(
            "allowed_hosts = [\"ok.invalid\", \"{bad}\"]\n"
        )));
        // The first entry is bad too: errors stop at the first.
        assert!(
            e.starts_with("connector[0] (stripe).allowed_hosts[0]:"),
            "{e}"
        );
        let e = error(&connector(&format!(
            "allowed_hosts = [\"https://ok.example\", \"{bad}\"]\n"
        )));
        assert!(
            e.starts_with("connector[0] (stripe).allowed_hosts[1]:"),
            "{bad}: {e}"
        );
        assert!(e.contains(why), "{bad}: {e}");
    }
    // validate() also checks configs built in code.
    let mut c = parse(MINIMAL_CONNECTOR);
    c.connectors[0].allowed_hosts = vec!["http://x.example/path".into()];
    assert!(c.validate().is_err());
}

// ---- secrecy --------------------------------------------------------------------------------

#[test]
fn errors_never_contain_secret_values() {
    const S: &str = "sup3r-s3cret-value";
    let cases = [
        // A numeric token written without quotes.
        "[server]\nadmin_token = 987654321\n".to_owned(),
        format!("[server]\nadmin_token = [\"{S}\"]\n"),
        format!("[server]\nadmin_token = \"{S}\"\nlistn = \"x\"\n"),
        format!("{MINIMAL_CONNECTOR}secret = {{ value = \"{S}\" }}\n"),
        format!("{MINIMAL_CONNECTOR}secret = \"{S}\"\nscheme = \"nope\"\n"),
        format!("{MINIMAL_CONNECTOR}outbound_secret = 987654321\n"),
        format!("{MINIMAL_CONNECTOR}secret = \"{S}\"\nid2 = 1\n"),
        format!("{MINIMAL_CONNECTOR}secret = \"{S}\n"),
        format!("{MINIMAL_CONNECTOR}secret = [\"{S}\", 987654321]\n"),
    ];
    for toml in &cases {
        let e = error(toml);
        assert!(!e.contains(S), "{e}");
        assert!(!e.contains("987654321"), "{e}");
    }
    let e = error_env(
        &format!("{MINIMAL_CONNECTOR}secret = [\"env:A\", \"env:B\"]\nscheme = \"bogus\"\n"),
        &[("A", S), ("B", S)],
    );
    assert!(!e.contains(S), "{e}");
}

#[test]
fn debug_and_summary_never_show_secrets() {
    let c = parse_env(
        &connector(
            "secret = [\"env:A\", \"lit-secret-2\"]\noutbound_secret = \"env:B\"\n\
             [connector.settings]\nkey = \"env:C\"\n",
        ),
        &[
            ("A", "secret-a"),
            ("B", "whsec_c2VjcmV0LWI="),
            ("C", "secret-c"),
            ("SWITCHYARD_SERVER_ADMIN_TOKEN", "secret-admin"),
        ],
    );
    for text in [format!("{c:?}"), format!("{c:#?}"), c.summary()] {
        for s in [
            "secret-a",
            "lit-secret-2",
            "whsec_c2VjcmV0LWI=",
            "c2VjcmV0LWI=",
            "secret-c",
            "secret-admin",
        ] {
            assert!(!text.contains(s), "{s} in {text}");
        }
    }
}

#[test]
fn summary_lists_connectors() {
    let c = parse(&format!(
        "{MINIMAL_CONNECTOR}secret = [\"a\", \"b\"]\nscheme = \"stripe\"\n\
         [[connector]]\nid = \"mc\"\nplugin = \"mailchimp.wasm\"\npaused = true\n\
         [connector.retry]\nmax_attempts = 3\n\
         [[connector]]\nid = \"off\"\nplugin = \"off.wasm\"\nenabled = false\n"
    ));
    let s = c.summary();
    assert!(
        s.contains("listen      127.0.0.1:8080 (admin token not set: the admin API is off)"),
        "{s}"
    );
    assert!(
        s.contains("storage     sled at data (retention 30 days"),
        "{s}"
    );
    assert!(s.contains("plugins     dist/plugins (watched"), "{s}");
    assert!(s.contains("connectors  3"), "{s}");
    assert!(
        s.contains("  stripe  stripe.wasm  enabled  scheme stripe  secrets 2\n"),
        "{s}"
    );
    assert!(
        s.contains(
            "  mc  mailchimp.wasm  paused  scheme (plugin default)  secrets 0  retry 3 attempts"
        ),
        "{s}"
    );
    assert!(
        s.ends_with("  off  off.wasm  disabled  scheme (plugin default)  secrets 0"),
        "{s}"
    );
    assert_eq!(HmacEncoding::Base64.as_str(), "base64");
    assert_eq!(Backend::Nats.to_string(), "nats");
}

#[test]
fn nats_servers_prefix_replicas_and_credentials() {
    let config = |storage: &str, env: &[(&str, &str)]| {
        let env: HashMap<String, String> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Config::from_toml_str(&format!("[storage]\nbackend = \"nats\"\n{storage}"), &env)
    };
    let c = config(
        "nats_url = [\"nats://10.0.0.1:4222\", \"10.0.0.2:4222\"]\nreplicas = 3\nnats_prefix = \"billing-prod\"\nnats_token = \"env:T\"",
        &[("T", "s3cret")],
    )
    .unwrap();
    assert_eq!(
        c.storage.nats_urls,
        ["nats://10.0.0.1:4222", "10.0.0.2:4222"]
    );
    assert_eq!(c.storage.replicas, 3);
    assert_eq!(c.storage.nats_prefix, "billing-prod");
    assert_eq!(c.storage.nats_auth, NatsAuth::Token(Secret::new("s3cret")));
    assert!(!c.summary().contains("s3cret"), "{}", c.summary());
    // An environment variable gives several servers separated by commas.
    let c = config(
        "",
        &[(
            "SWITCHYARD_STORAGE_NATS_URL",
            "nats://a:4222, nats://b:4222",
        )],
    )
    .unwrap();
    assert_eq!(c.storage.nats_urls, ["nats://a:4222", "nats://b:4222"]);
    let c = config(
        "nats_url = \"nats://a:4222\"\nnats_user = \"sy\"\nnats_password = \"pw\"",
        &[],
    )
    .unwrap();
    assert_eq!(
        c.storage.nats_auth,
        NatsAuth::UserPassword {
            user: "sy".into(),
            password: Secret::new("pw")
        }
    );
    let err = |storage: &str| config(storage, &[]).unwrap_err().to_string();
    assert_eq!(
        err("nats_url = \"nats://a\"\nnats_token = \"t\"\nnats_creds = \"c\""),
        "storage.nats_token: give one of nats_token, nats_user and nats_password, or nats_creds"
    );
    assert_eq!(
        err("nats_url = \"nats://a\"\nnats_user = \"sy\""),
        "storage.nats_password: is required with nats_user"
    );
    assert_eq!(
        err("nats_url = \"http://a:4222\""),
        "storage.nats_url[0]: `http://a:4222`: the scheme must be nats://, tls://, ws:// or wss://"
    );
    assert_eq!(
        err("nats_url = \"nats://a\"\nreplicas = 2"),
        "storage.replicas: must be 1 (one server) or 3 (a quorum of a 3-node cluster)"
    );
    assert_eq!(
        err("nats_url = \"nats://a\"\nnats_prefix = \"a.b\""),
        "storage.nats_prefix: must be 1 to 32 letters, digits, `_` or `-`"
    );
    assert_eq!(
        err("nats_url = 4222"),
        "storage.nats_url: expected a string or an array of strings (several servers)"
    );
}

/// `docs/configuration.md` is the reference a user reads: every key of the built-in
/// defaults (set or shown commented out) is in it, so the two cannot drift apart.
#[test]
fn the_configuration_reference_names_every_default_key() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let defaults = std::fs::read_to_string(root.join("config.default.toml")).unwrap();
    let reference = std::fs::read_to_string(root.join("../docs/configuration.md")).unwrap();
    let keys: Vec<&str> = defaults
        .lines()
        .filter_map(|line| {
            let line = line.strip_prefix("# ").unwrap_or(line);
            let (key, _) = line.split_once(" = ")?;
            key.bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
                .then_some(key)
        })
        .collect();
    assert!(
        keys.len() > 40,
        "read the keys of config.default.toml: {keys:?}"
    );
    let missing: Vec<&&str> = keys
        .iter()
        .filter(|key| !reference.contains(&format!("`{key}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "docs/configuration.md lacks {missing:?}"
    );
}

/// The keys of `[server]`, `[storage]`, `[plugins]`, `[retry]` and `[telemetry]` as the
/// configuration reference lists them (its tables' first column).
fn documented_section_keys() -> Vec<(String, String)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let reference = std::fs::read_to_string(root.join("../docs/configuration.md")).unwrap();
    let mut keys = Vec::new();
    let mut section = None;
    for line in reference.lines() {
        if let Some(heading) = line.strip_prefix("## `[") {
            section = heading
                .strip_suffix("]`")
                .filter(|s| ["server", "storage", "plugins", "retry", "telemetry"].contains(s))
                .map(str::to_owned);
        } else if line.starts_with("## ") || line.starts_with("### ") {
            section = None;
        } else if let (Some(section), Some(row)) = (&section, line.strip_prefix("| `"))
            && let Some((key, _)) = row.split_once('`')
        {
            keys.push((section.clone(), key.to_owned()));
        }
    }
    keys
}

/// [`load::ENV_TEXT_KEYS`] is the list of keys whose environment value stays text: it
/// must hold exactly the keys whose type takes text, or `SWITCHYARD_SERVER_ADMIN_TOKEN=123456`
/// stops working (a key missing) or `SWITCHYARD_SERVER_MAX_BODY_BYTES=4096` does (a key too
/// many). A key takes text when `key = "12345"` in a file is not refused for its type.
#[test]
fn the_env_text_keys_are_exactly_the_keys_that_take_text() {
    let keys = documented_section_keys();
    assert!(keys.len() > 35, "read the reference's keys: {keys:?}");
    let mut wrong = Vec::new();
    for (section, key) in &keys {
        let toml = format!("[{section}]\n{key} = \"12345\"\n");
        let takes_text = Config::from_toml_str(&toml, &HashMap::new())
            .err()
            .is_none_or(|e| !e.to_string().contains("found a string"));
        let path = format!("{section}.{key}");
        if takes_text != load::ENV_TEXT_KEYS.contains(&path.as_str()) {
            wrong.push(path);
        }
    }
    assert!(wrong.is_empty(), "ENV_TEXT_KEYS is wrong about {wrong:?}");
    for listed in load::ENV_TEXT_KEYS {
        assert!(
            keys.iter().any(|(s, k)| format!("{s}.{k}") == *listed),
            "ENV_TEXT_KEYS names {listed}, which the reference does not document"
        );
    }
}

// ---- destinations ---------------------------------------------------------------------------

const BILLING: &str = r#"
[[destination]]
id = "billing"
url = "http://127.0.0.1:9000/billing"
"#;

#[test]
fn a_destination_takes_its_defaults_and_its_own_keys() {
    let c = parse_env(
        &format!(
            r#"{BILLING}
[[destination]]
id = "orders"
url = "nats://127.0.0.1:4222/orders.created"
enabled = false
headers = {{ Authorization = "env:ORDERS_TOKEN", X-Team = "billing" }}
outbound_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
timeout = "3s"
rate_limit = 50
rate_limit_burst = 10
max_concurrency = 8
breaker_failures = 10
breaker_cooldown = "5s"
disable_after = "1h"
[destination.retry]
max_attempts = 20

[alerts]
url = "http://127.0.0.1:9100/alerts"
"#
        ),
        &[("ORDERS_TOKEN", "Bearer t0ken")],
    );
    let [billing, orders] = &c.destinations[..] else {
        panic!("two destinations: {:?}", c.destinations);
    };
    assert_eq!(
        *billing,
        DestinationConfig::new("billing", "http://127.0.0.1:9000/billing")
    );
    assert!(!orders.enabled);
    let headers: Vec<(&str, &str)> = orders
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.expose()))
        .collect();
    assert_eq!(
        headers,
        [("Authorization", "Bearer t0ken"), ("X-Team", "billing")]
    );
    assert_eq!(
        (
            orders.rate_limit,
            orders.rate_limit_burst,
            orders.max_concurrency
        ),
        (Some(50), 10, Some(8))
    );
    assert_eq!(orders.breaker_failures, 10);
    assert_eq!(orders.breaker_cooldown, Duration::from_secs(5));
    assert_eq!(orders.disable_after, Duration::from_secs(3600));
    // `[destination.retry]` and `timeout` over the connector's policy; the rest is its.
    let effective = orders.retry.over(&c.retry);
    assert_eq!(effective.max_attempts, 20);
    assert_eq!(effective.timeout, Duration::from_secs(3));
    assert_eq!(effective.initial_backoff, c.retry.initial_backoff);
    assert_eq!(
        c.alerts.url.as_deref(),
        Some("http://127.0.0.1:9100/alerts")
    );
}

#[test]
fn a_connector_may_name_a_destination_in_allowed_hosts() {
    let c = parse(&format!(
        "{BILLING}{}",
        connector(r#"allowed_hosts = ["destination:billing"]"#)
    ));
    assert_eq!(c.connectors[0].allowed_hosts, ["destination:billing"]);
    let allowed = crate::outbound::AllowedHosts::new(&c.connectors[0].allowed_hosts);
    assert!(allowed.grants_destination("billing", "http://127.0.0.1:9000/billing"));
    assert!(!allowed.grants_destination("audit", "http://127.0.0.1:9000/audit"));
    // The entry grants the destination, not its address.
    assert!(!allowed.allows("http://127.0.0.1:9000/billing"));
}

#[test]
fn destination_errors_name_the_destination_and_the_key() {
    let cases = [
        (
            format!(
                "{BILLING}{}",
                connector(r#"allowed_hosts = ["destination:audit"]"#)
            ),
            "connector[0] (stripe).allowed_hosts[0]: there is no [[destination]] with id `audit` (known: billing)",
        ),
        (
            format!("{BILLING}{BILLING}"),
            "destination[1] (billing).id: duplicate id `billing` (also used by destination[0])",
        ),
        (
            "[[destination]]\nid = \"x\"\nurl = \"ftp://127.0.0.1/x\"\n".into(),
            "destination[0] (x).url: the scheme `ftp` is not one a destination can use",
        ),
        (
            "[[destination]]\nid = \"x\"\nurl = \"127.0.0.1:9000\"\n".into(),
            "destination[0] (x).url: `127.0.0.1:9000` is not a URL",
        ),
        (
            format!("{BILLING}rate_limit = 0\n"),
            "destination[0] (billing).rate_limit: must be at least 1",
        ),
        (
            format!("{BILLING}max_concurrency = 0\n"),
            "destination[0] (billing).max_concurrency: must be at least 1",
        ),
        (
            format!("{BILLING}headers = {{ Idempotency-Key = \"x\" }}\n"),
            "destination[0] (billing).headers: `Idempotency-Key` is set by the host",
        ),
        (
            format!("{BILLING}breaker_cooldown = \"0s\"\n"),
            "destination[0] (billing).breaker_cooldown: must be greater than 0",
        ),
        (format!("{BILLING}rate = 5\n"), "destination[0] (billing)"),
        (
            format!("{BILLING}[destination.retry]\nmax_attempts = 0\n"),
            "destination[0] (billing).retry.max_attempts: must be at least 1",
        ),
        (
            format!("{BILLING}outbound_secret = \"whsec_not base64!\"\n"),
            "destination[0] (billing).outbound_secret",
        ),
        (
            "[destination]\nid = \"x\"\nurl = \"http://127.0.0.1/x\"\n".into(),
            "destination: write each destination as [[destination]] (double brackets)",
        ),
        (
            format!("{BILLING}\n[alerts]\nurl = \"not a url\"\n"),
            "alerts.url: must be an http:// or https:// URL",
        ),
        (
            connector(r#"allowed_hosts = ["destination:Not Valid"]"#),
            "connector[0] (stripe).allowed_hosts[0]: `destination:Not Valid`: a destination is named `destination:ID`",
        ),
    ];
    for (toml, expected) in cases {
        let message = error(&toml);
        assert!(
            message.contains(expected),
            "for\n{toml}\nexpected an error containing\n  {expected}\ngot\n  {message}"
        );
    }
}
