//! `switchyard events list|show|replay`: the admin API of a running host, from a shell.
//!
//! Where the host is: `--url`, else `http://` + `server.listen` of `--config` (when that
//! file exists), else `http://127.0.0.1:8080`. The token: `--token` (or
//! `SWITCHYARD_ADMIN_TOKEN`), else the config's `server.admin_token`.

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
    #[arg(long, global = true)]
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
        /// Print the API's JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// One event whole, as JSON: `GET /v1/events/{id}`.
    Show { id: String },
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

/// Run one `events` command.
pub fn events(target: Target, command: Events) -> anyhow::Result<ExitCode> {
    let client = Client::new(&target)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        match command {
            Events::List {
                connector,
                status,
                since,
                until,
                limit,
                cursor,
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
                ];
                for (key, value) in pairs {
                    if let Some(value) = value {
                        query.push((key, value));
                    }
                }
                let page = client
                    .send(client.http.get(client.url("/v1/events")).query(&query))
                    .await?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&page)?);
                } else {
                    print!("{}", table(&page));
                }
            }
            Events::Show { id } => {
                let path = format!("/v1/events/{}", encode(&id));
                let event = client.send(client.http.get(client.url(&path))).await?;
                println!("{}", serde_json::to_string_pretty(&event)?);
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
                if connector.is_none() && status.is_none() && since.is_none() && until.is_none()
                {
                    bail!(
                        "give an event id, or filters (--connector, --status, --since, --until) for a bulk replay"
                    );
                }
                let body = serde_json::json!({
                    "connector": connector,
                    "status": status,
                    "since": since,
                    "until": until,
                    "new_keys": new_keys,
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
                println!("replaying {} events", answer["replayed"]);
            }
        }
        anyhow::Ok(ExitCode::SUCCESS)
    })
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
