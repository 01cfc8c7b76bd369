//! `switchyard events list|show|find|replay` and `switchyard connectors
//! list|show|pause|resume|reload`: the admin API of a running host, from a shell.
//!
//! Where the host is: `--url` (or `SWITCHYARD_URL`), else `http://` + `server.listen` of
//! `--config` (when that file exists), else `http://127.0.0.1:8080`. The token: `--token`
//! (or `SWITCHYARD_ADMIN_TOKEN`), else the config's `server.admin_token`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use clap::{Args, Subcommand};
use serde_json::Value;

/// How to reach the admin API.
#[derive(Args)]
pub struct Target {
    /// The host's base URL, e.g. `http://127.0.0.1:8080`.
    #[arg(long, global = true, env = "SWITCHYARD_URL")]
    url: Option<String>,
    /// The admin token (or `env:VAR` / `file:PATH`).
    #[arg(
        long,
        global = true,
        env = "SWITCHYARD_ADMIN_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// The config the host runs with: where it listens and its token, unless given.
    #[arg(long, short, global = true, default_value = "switchyard.toml")]
    config: PathBuf,
}

#[derive(Subcommand)]
pub enum Events {
    /// The event log, newest first: `GET /v1/events`.
    List {
        #[arg(long)]
        connector: Option<String>,
        /// pending, retrying, succeeded, dead, duplicate or rejected.
        #[arg(long)]
        status: Option<String>,
        /// RFC 3339 or unix seconds.
        #[arg(long)]
        since: Option<String>,
        /// RFC 3339 or unix seconds.
        #[arg(long)]
        until: Option<String>,
        /// At most this many (the host caps it).
        #[arg(long)]
        limit: Option<usize>,
        /// Where the previous page ended (printed under it).
        #[arg(long)]
        cursor: Option<String>,
        /// Only events deduped on this key (a Stripe `evt_…`, a `webhook-id`).
        #[arg(long)]
        key: Option<String>,
        /// The event that sent this `Idempotency-Key`.
        #[arg(long)]
        delivery_key: Option<String>,
        /// Text in the request body (a slower, bounded scan: page on with the cursor).
        #[arg(long)]
        search: Option<String>,
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One event: what was received, how it was verified, each connector attempt and each
    /// delivery (`GET /v1/events/{id}`).
    Show {
        id: String,
        /// Print the whole record as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// "Did the vendor send us this, and what did we do with it?": KEY is a vendor's event
    /// id (the dedupe key), an `Idempotency-Key` we sent, or an event id. Exit 1 when
    /// nothing matches.
    Find {
        key: String,
        /// Print the matching records as JSON instead.
        #[arg(long)]
        json: bool,
    },
    /// Send an event to its connector again (`POST /v1/events/{id}/replay`), or, without
    /// an id, every event matching the filters (`POST /v1/replay`).
    Replay {
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        connector: Option<String>,
        #[arg(long, conflicts_with = "id")]
        status: Option<String>,
        #[arg(long, conflicts_with = "id")]
        since: Option<String>,
        #[arg(long, conflicts_with = "id")]
        until: Option<String>,
        /// Give the new run's deliveries new `Idempotency-Key`s (a deliberate new effect);
        /// by default they carry the keys the first run sent.
        #[arg(long)]
        new_keys: bool,
    },
}

#[derive(Subcommand)]
pub enum Connectors {
    /// Every configured connector: `GET /v1/connectors`.
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One connector: `GET /v1/connectors/{id}`.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Stop dispatching its events (they are still received and stored), on every host.
    Pause { id: String },
    /// Dispatch its events again, the ones stored while paused first.
    Resume { id: String },
    /// Load its plugin file again.
    Reload { id: String },
}

/// Run one `connectors` command.
pub fn connectors(target: Target, command: Connectors) -> anyhow::Result<ExitCode> {
    with_client(&target, async move |client| {
        match command {
            Connectors::List { json } => {
                let list = client
                    .send(client.http.get(client.url("/v1/connectors")))
                    .await?;
                show(&list, json, |list| {
                    let mut text =
                        connector_table(list["data"].as_array().map_or(&[][..], Vec::as_slice));
                    if let Some(error) = list["config_error"].as_str() {
                        text.push_str(&format!("config not reloaded: {error}\n"));
                    }
                    text
                })?;
            }
            Connectors::Show { id, json } => {
                let path = format!("/v1/connectors/{}", encode(&id));
                let connector = client.send(client.http.get(client.url(&path))).await?;
                show(&connector, json, |c| {
                    connector_table(std::slice::from_ref(c))
                })?;
            }
            Connectors::Pause { id } => act(&client, &id, "pause", "paused").await?,
            Connectors::Resume { id } => act(&client, &id, "resume", "resumed").await?,
            Connectors::Reload { id } => act(&client, &id, "reload", "reloaded").await?,
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// `POST /v1/connectors/{id}/{action}`, then say what became of it.
async fn act(client: &Client, id: &str, action: &str, done: &str) -> anyhow::Result<()> {
    let path = format!("/v1/connectors/{}/{action}", encode(id));
    let answer = client.send(client.http.post(client.url(&path))).await?;
    match answer["version"].as_str() {
        Some(version) => println!("{id} {done} (plugin {version})"),
        None => println!("{id} {done}"),
    }
    Ok(())
}

/// Connectors as a table: one line each, the last error under its line.
fn connector_table(connectors: &[Value]) -> String {
    let mut out = format!(
        "{:<16}  {:<9}  {:<24}  {:<10}  {:<17}  {}\n",
        "ID", "STATE", "PLUGIN", "VERSION", "SCHEME", "DIGEST"
    );
    for c in connectors {
        let state = if c["enabled"] == false {
            "disabled"
        } else if c["paused"] == true {
            "paused"
        } else if c["last_error"].is_string() && c["version"].is_null() {
            "error"
        } else {
            "running"
        };
        out.push_str(&format!(
            "{:<16}  {:<9}  {:<24}  {:<10}  {:<17}  {}\n",
            c["id"].as_str().unwrap_or("?"),
            state,
            c["plugin"].as_str().unwrap_or("-"),
            c["version"].as_str().unwrap_or("-"),
            c["scheme"].as_str().unwrap_or("-"),
            c["digest"]
                .as_str()
                .map_or("-", |d| d.get(..19).unwrap_or(d)),
        ));
        if let Some(error) = c["last_error"].as_str() {
            out.push_str(&format!("    last error: {error}\n"));
        }
        for (window, label) in [("last_24h", "last 24 h"), ("retention", "retained")] {
            if let Some(counts) = c["counts"][window].as_object() {
                let nonzero: Vec<String> = counts
                    .iter()
                    .filter(|(_, n)| n.as_u64().is_some_and(|n| n > 0))
                    .map(|(status, n)| format!("{n} {status}"))
                    .collect();
                let text = if nonzero.is_empty() {
                    "no events".into()
                } else {
                    nonzero.join(", ")
                };
                out.push_str(&format!("    {label}: {text}\n"));
            }
        }
        if let Some(error) = c["last_delivery_error"].as_object() {
            out.push_str(&format!(
                "    last delivery error: {} (event {}, {})\n",
                error.get("error").and_then(Value::as_str).unwrap_or("?"),
                error.get("event_id").and_then(Value::as_str).unwrap_or("?"),
                time(error.get("at").unwrap_or(&Value::Null)),
            ));
        }
    }
    out
}

#[derive(Subcommand)]
pub enum Destinations {
    /// Every `[[destination]]`, its circuit and limits on that host: `GET /v1/destinations`.
    List {
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One destination: `GET /v1/destinations/{id}`.
    Show {
        id: String,
        #[arg(long)]
        json: bool,
    },
    /// Let its kept deliveries flow again (closes its circuit).
    Enable { id: String },
    /// Hold its deliveries (kept, not dropped) until it is enabled.
    Disable { id: String },
}

/// Run one `destinations` command.
pub fn destinations(target: Target, command: Destinations) -> anyhow::Result<ExitCode> {
    with_client(&target, async move |client| {
        match command {
            Destinations::List { json } => {
                let list = client
                    .send(client.http.get(client.url("/v1/destinations")))
                    .await?;
                show(&list, json, |list| {
                    destination_table(list["data"].as_array().map_or(&[][..], Vec::as_slice))
                })?;
            }
            Destinations::Show { id, json } => {
                let path = format!("/v1/destinations/{}", encode(&id));
                let destination = client.send(client.http.get(client.url(&path))).await?;
                show(&destination, json, |d| {
                    destination_table(std::slice::from_ref(d))
                })?;
            }
            Destinations::Enable { ref id } | Destinations::Disable { ref id } => {
                let action = if matches!(command, Destinations::Enable { .. }) {
                    "enable"
                } else {
                    "disable"
                };
                let path = format!("/v1/destinations/{}/{action}", encode(id));
                let answer = client.send(client.http.post(client.url(&path))).await?;
                print!("{}", destination_table(std::slice::from_ref(&answer)));
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// Destinations as a table: one line each, the last error under its line.
fn destination_table(destinations: &[Value]) -> String {
    let mut out = format!(
        "{:<16}  {:<9}  {:>9}  {:>9}  {:>9}  {}\n",
        "ID", "CIRCUIT", "SUCCEEDED", "FAILED", "DEFERRED", "URL"
    );
    for d in destinations {
        let state = match (d["state"].as_str(), d["disabled"].as_str()) {
            (Some("disabled"), Some(by)) => format!("disabled ({by})"),
            (Some(state), _) => state.to_string(),
            _ => "?".into(),
        };
        let count = |key: &str| d["counts"][key].as_u64().unwrap_or(0);
        out.push_str(&format!(
            "{:<16}  {:<9}  {:>9}  {:>9}  {:>9}  {}\n",
            d["id"].as_str().unwrap_or("?"),
            state,
            count("succeeded"),
            count("failed"),
            count("deferred"),
            d["url"].as_str().unwrap_or("-"),
        ));
        if let Some(since) = d["open_since"].as_u64() {
            out.push_str(&format!("    open since {}\n", time(&since.into())));
        }
        if let Some(error) = d["last_error"].as_object() {
            out.push_str(&format!(
                "    last error: {} ({})\n",
                error.get("error").and_then(Value::as_str).unwrap_or("?"),
                time(error.get("at").unwrap_or(&Value::Null)),
            ));
        }
    }
    out
}

/// Events a bulk replay reads per call.
const REPLAY_PAGE: usize = 500;

/// Run one `events` command.
pub fn events(target: Target, command: Events) -> anyhow::Result<ExitCode> {
    with_client(&target, async move |client| {
        match command {
            Events::List {
                connector,
                status,
                since,
                until,
                limit,
                cursor,
                key,
                delivery_key,
                search,
                json,
            } => {
                let mut query = Vec::new();
                let pairs = [
                    ("connector", connector),
                    ("status", status),
                    ("since", since),
                    ("until", until),
                    ("limit", limit.map(|n| n.to_string())),
                    ("cursor", cursor),
                    ("key", key),
                    ("delivery_key", delivery_key),
                    ("q", search),
                ];
                for (key, value) in pairs {
                    if let Some(value) = value {
                        query.push((key, value));
                    }
                }
                let page = client
                    .send(client.http.get(client.url("/v1/events")).query(&query))
                    .await?;
                show(&page, json, table)?;
            }
            Events::Show { id, json } => {
                let event = client.event(&id).await?;
                show(&event, json, summary)?;
            }
            Events::Find { key, json } => {
                let found = client.find(&key).await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&found)?);
                } else if found.is_empty() {
                    eprintln!(
                        "nothing found for {key:?}: no event has it as its dedupe key, an Idempotency-Key we sent, or its id"
                    );
                } else {
                    for event in &found {
                        println!("{}", one_line(event));
                    }
                }
                if found.is_empty() {
                    return anyhow::Ok(ExitCode::FAILURE);
                }
            }
            Events::Replay {
                id: Some(id),
                new_keys,
                ..
            } => {
                let path = format!("/v1/events/{}/replay", encode(&id));
                let body = serde_json::json!({ "new_keys": new_keys });
                client
                    .send(
                        client
                            .http
                            .post(client.url(&path))
                            .header("content-type", "application/json")
                            .body(body.to_string()),
                    )
                    .await?;
                println!("replaying {id}");
            }
            Events::Replay {
                id: None,
                connector,
                status,
                since,
                until,
                new_keys,
            } => {
                if connector.is_none() && status.is_none() && since.is_none() && until.is_none() {
                    bail!(
                        "give an event id, or filters (--connector, --status, --since, --until) for a bulk replay"
                    );
                }
                // A page of the log per call, so a long replay shows its progress and no
                // single request runs for minutes.
                let progress = indicatif::ProgressBar::new_spinner().with_style(
                    indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
                        .expect("a valid template"),
                );
                let (mut replayed, mut read, mut cursor) = (0u64, 0u64, None::<String>);
                loop {
                    let body = serde_json::json!({
                        "connector": connector,
                        "status": status,
                        "since": since,
                        "until": until,
                        "new_keys": new_keys,
                        "limit": REPLAY_PAGE,
                        "cursor": cursor,
                    });
                    let answer = client
                        .send(
                            client
                                .http
                                .post(client.url("/v1/replay"))
                                .header("content-type", "application/json")
                                .body(body.to_string()),
                        )
                        .await?;
                    replayed += answer["replayed"].as_u64().unwrap_or(0);
                    read += answer["read"].as_u64().unwrap_or(0);
                    progress.set_message(format!("replaying {replayed} events of {read} read"));
                    progress.tick();
                    match answer["next_cursor"].as_str() {
                        Some(next) => cursor = Some(next.to_string()),
                        None => break,
                    }
                }
                progress.finish_and_clear();
                println!("replaying {replayed} events");
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
}

/// Run `command` with a client of `target`'s admin API, on a runtime of its own.
fn with_client(
    target: &Target,
    command: impl AsyncFnOnce(Client) -> anyhow::Result<ExitCode>,
) -> anyhow::Result<ExitCode> {
    let client = Client::new(target)?;
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(command(client))
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
}

impl Client {
    fn new(target: &Target) -> anyhow::Result<Client> {
        let config = config_if_present(&target.config)?;
        let base = match (&target.url, &config) {
            (Some(url), _) => url.trim_end_matches('/').to_string(),
            (None, Some(config)) => format!("http://{}", config.server.listen),
            (None, None) => "http://127.0.0.1:8080".to_string(),
        };
        let token = match &target.token {
            Some(token) => Some(
                switchyard::config::resolve_reference("--token", token)
                    .map_err(|err| anyhow::anyhow!("{err}"))?,
            ),
            None => config
                .and_then(|c| c.server.admin_token)
                .map(|t| t.expose().to_string()),
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()?;
        Ok(Client { http, base, token })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// One event's whole record.
    async fn event(&self, id: &str) -> anyhow::Result<Value> {
        let path = format!("/v1/events/{}", encode(id));
        self.send(self.http.get(self.url(&path))).await
    }

    /// The whole records of the events `key` names: as a dedupe key, else as an
    /// `Idempotency-Key`, else as an event id.
    async fn find(&self, key: &str) -> anyhow::Result<Vec<Value>> {
        for filter in ["key", "delivery_key"] {
            let page = self
                .send(
                    self.http
                        .get(self.url("/v1/events"))
                        .query(&[(filter, key)]),
                )
                .await?;
            let ids: Vec<&str> = page["data"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["id"].as_str())
                .collect();
            if !ids.is_empty() {
                let mut found = Vec::with_capacity(ids.len());
                for id in ids {
                    found.push(self.event(id).await?);
                }
                return Ok(found);
            }
        }
        if ulid::Ulid::from_string(key).is_ok() {
            match self.event(key).await {
                Ok(event) => return Ok(vec![event]),
                Err(err) if err.to_string().starts_with("404") => {}
                Err(err) => return Err(err),
            }
        }
        Ok(Vec::new())
    }

    /// Send with the token; the JSON of a 2xx answer, or an error that says what the host
    /// answered.
    async fn send(&self, request: reqwest::RequestBuilder) -> anyhow::Result<Value> {
        let request = match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        };
        let response = request
            .send()
            .await
            .with_context(|| format!("reaching the host at {}", self.base))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let text = response.text().await.unwrap_or_default();
        let body: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status.is_success() {
            return Ok(body);
        }
        let message = body["error"]["message"]
            .as_str()
            .map(str::to_owned)
            .unwrap_or_else(|| text.trim().chars().take(200).collect());
        let code = body["error"]["code"].as_str().unwrap_or("error");
        match retry_after {
            Some(wait) => bail!("{status} {code}: {message} (retry in {wait} s)"),
            None => bail!("{status} {code}: {message}"),
        }
    }
}

/// The config at `path` when the file exists (its errors are errors then).
fn config_if_present(path: &Path) -> anyhow::Result<Option<switchyard::Config>> {
    if !path.exists() {
        return Ok(None);
    }
    switchyard::Config::load(path)
        .map(Some)
        .map_err(|err| anyhow::anyhow!("{}: {err}", path.display()))
}

/// A path segment, percent-encoded.
fn encode(segment: &str) -> String {
    url::form_urlencoded::byte_serialize(segment.as_bytes()).collect()
}

/// Print an answer: the API's JSON with `--json`, else `text` of it for a person.
fn show(answer: &Value, json: bool, text: impl FnOnce(&Value) -> String) -> anyhow::Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(answer)?);
    } else {
        print!("{}", text(answer));
    }
    Ok(())
}

/// Unix ms as RFC 3339.
fn time(ms: &Value) -> String {
    ms.as_u64()
        .map(|ms| {
            humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
        })
        .unwrap_or_else(|| "-".into())
}

/// How verification went, in words.
fn verification(event: &Value) -> String {
    let v = &event["verification"];
    let scheme = v["scheme"].as_str().unwrap_or("?");
    match (v["verified"].as_bool(), v["error"].as_str()) {
        (Some(true), _) if scheme == "none" => "not verified (scheme none)".into(),
        (Some(true), _) => format!("verified ({scheme})"),
        (_, Some(error)) => format!("refused ({scheme}: {error})"),
        _ => format!("refused ({scheme})"),
    }
}

/// A delivery's latest answer: `200`, `503 after 3 tries`, or the error.
fn delivery_outcome(delivery: &Value) -> String {
    let attempts = delivery["attempts"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    let tries = match attempts.len() {
        1 => String::new(),
        n => format!(" after {n} tries"),
    };
    match attempts.last() {
        None => "not sent yet".into(),
        Some(last) => match (last["response"]["status"].as_u64(), last["error"].as_str()) {
            (Some(status), _) => format!("{status}{tries}"),
            (None, Some(error)) => format!("{error}{tries}"),
            _ => format!("no answer{tries}"),
        },
    }
}

/// `events find`: one line per event.
fn one_line(event: &Value) -> String {
    let deliveries: Vec<String> = event["deliveries"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|d| {
            format!(
                "{} {} → {}",
                d["request"]["method"].as_str().unwrap_or("POST"),
                d["request"]["url"].as_str().unwrap_or("?"),
                delivery_outcome(d)
            )
        })
        .collect();
    let status = match event["duplicate_of"].as_str() {
        Some(first) => format!("duplicate of {first}"),
        None => event["status"].as_str().unwrap_or("?").to_string(),
    };
    let deliveries = match deliveries.len() {
        0 => "no deliveries".to_string(),
        _ => format!("deliveries: {}", deliveries.join("; ")),
    };
    format!(
        "{id} {key}: received {at} by {connector}, {verification}, {status}; {deliveries}",
        id = event["id"].as_str().unwrap_or("?"),
        key = event["dedupe_key"].as_str().unwrap_or("(no key)"),
        at = time(&event["received_at"]),
        connector = event["connector"].as_str().unwrap_or("?"),
        verification = verification(event),
    )
}

/// `events show`: the record for a person.
fn summary(event: &Value) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let field = |out: &mut String, name: &str, value: &str| {
        let _ = writeln!(out, "{name:<13}{value}");
    };
    field(&mut out, "event", event["id"].as_str().unwrap_or("?"));
    field(
        &mut out,
        "connector",
        event["connector"].as_str().unwrap_or("?"),
    );
    let mut status = event["status"].as_str().unwrap_or("?").to_string();
    if let Some(first) = event["duplicate_of"].as_str() {
        status = format!("{status} of {first}");
    }
    if let Some(error) = event["error"].as_str() {
        status = format!("{status}: {error}");
    }
    field(&mut out, "status", &status);
    field(&mut out, "received", &time(&event["received_at"]));
    field(&mut out, "verification", &verification(event));
    field(
        &mut out,
        "dedupe key",
        event["dedupe_key"].as_str().unwrap_or("-"),
    );
    let request = &event["request"];
    if request.is_object() {
        let body = request["body"]
            .as_str()
            .map_or_else(|| "(binary)".to_string(), |b| format!("{} bytes", b.len()));
        let query = request["query"].as_str().filter(|q| !q.is_empty());
        field(
            &mut out,
            "request",
            &format!(
                "{} {}{}{}, {body}",
                request["method"].as_str().unwrap_or("?"),
                request["path"].as_str().unwrap_or("?"),
                if query.is_some() { "?" } else { "" },
                query.unwrap_or(""),
            ),
        );
    }
    let _ = writeln!(out, "attempts");
    for attempt in event["attempts"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  #{} {} {} in {} ms, {} deliveries (plugin {} {}){}",
            attempt["number"],
            time(&attempt["at"]),
            attempt["outcome"].as_str().unwrap_or("?"),
            attempt["duration_ms"],
            attempt["deliveries"],
            attempt["plugin_version"].as_str().unwrap_or("?"),
            attempt["plugin_digest"]
                .as_str()
                .unwrap_or("?")
                .get(..12)
                .unwrap_or(""),
            attempt["message"]
                .as_str()
                .map(|m| format!(": {m}"))
                .unwrap_or_default(),
        );
        for line in attempt["logs"].as_array().into_iter().flatten() {
            let _ = writeln!(
                out,
                "      {} {}",
                line["level"].as_str().unwrap_or("?"),
                line["message"].as_str().unwrap_or("")
            );
        }
    }
    let _ = writeln!(out, "deliveries");
    for delivery in event["deliveries"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  #{} {} {} → {} ({}, Idempotency-Key {})",
            delivery["index"],
            delivery["request"]["method"].as_str().unwrap_or("?"),
            delivery["request"]["url"].as_str().unwrap_or("?"),
            delivery_outcome(delivery),
            delivery["status"].as_str().unwrap_or("?"),
            delivery["idempotency_key"].as_str().unwrap_or("?"),
        );
    }
    out
}

/// An event list page as a table, then where the next page starts.
fn table(page: &Value) -> String {
    let mut out = format!(
        "{:<26}  {:<16}  {:<10}  {:<24}  {}\n",
        "ID", "CONNECTOR", "STATUS", "RECEIVED", "DEDUPE KEY"
    );
    for event in page["data"].as_array().into_iter().flatten() {
        let received = event["received_at"]
            .as_u64()
            .map(|ms| {
                humantime::format_rfc3339_millis(UNIX_EPOCH + Duration::from_millis(ms)).to_string()
            })
            .unwrap_or_default();
        out.push_str(&format!(
            "{:<26}  {:<16}  {:<10}  {:<24}  {}\n",
            event["id"].as_str().unwrap_or_default(),
            event["connector"].as_str().unwrap_or_default(),
            event["status"].as_str().unwrap_or_default(),
            received,
            event["dedupe_key"].as_str().unwrap_or("-"),
        ));
    }
    if let Some(cursor) = page["next_cursor"].as_str() {
        out.push_str(&format!("more: --cursor {cursor}\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_prints_as_a_table_with_its_cursor() {
        let page = serde_json::json!({
            "data": [{
                "id": "01KBY3Z8Q6V9W0A1B2C3D4E5F6",
                "connector": "stripe",
                "status": "succeeded",
                "received_at": 1_764_000_000_123u64,
                "dedupe_key": "evt_1"
            }, {
                "id": "01KBY3Z8Q6V9W0A1B2C3D4E5F7",
                "connector": "stripe",
                "status": "rejected",
                "received_at": 1_764_000_000_000u64,
                "dedupe_key": null
            }],
            "next_cursor": "abc"
        });
        let text = table(&page);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[1].contains("succeeded") && lines[1].contains("2025-11-24T16:00:00.123Z"));
        assert!(lines[1].ends_with("evt_1"));
        assert!(lines[2].ends_with('-'), "no dedupe key: {}", lines[2]);
        assert_eq!(lines[3], "more: --cursor abc");
        assert!(!table(&serde_json::json!({"data": [], "next_cursor": null})).contains("more"));
    }
}
