//! The admin API under `/v1` (bearer `server.admin_token`), plus the unauthenticated
//! `GET /v1/health`. Without an `admin_token` configured, every authenticated route
//! answers 401: the API is off rather than open. `server.admin_read_token` may only read:
//! anything but `GET` and `HEAD` answers it 403.
//!
//! Every answer under `/v1` carries the rate-limit headers, and a `GET`'s an `ETag`
//! ([`http`]).

pub mod http;

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::error::ApiError;
use crate::store::{EventQuery, EventRecord, ReplayError, Status};

pub fn routes(app: Arc<App>) -> Router<Arc<App>> {
    let authed = Router::new()
        .route("/v1/connectors", get(list_connectors))
        .route("/v1/connectors/{id}", get(show_connector))
        .route("/v1/connectors/{id}/reload", post(reload_connector))
        .route("/v1/connectors/{id}/pause", post(pause_connector))
        .route("/v1/connectors/{id}/resume", post(resume_connector))
        .route("/v1/reload", post(reload_all))
        .route("/v1/events", get(list_events))
        .route("/v1/events/{id}", get(show_event))
        .route("/v1/events/{id}/replay", post(replay_event))
        .route("/v1/replay", post(replay_many))
        .route(
            "/v1/plugins/{name}",
            post(push_plugin).layer(axum::extract::DefaultBodyLimit::max(
                crate::store::nats::plugins::MAX_BUILD_BYTES,
            )),
        )
        .route_layer(middleware::from_fn_with_state(app.clone(), require_token));
    Router::new()
        .route("/v1/health", get(health))
        .merge(authed)
        .layer(middleware::from_fn(http::etag))
        .layer(middleware::from_fn_with_state(app, http::rate_limit))
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn require_token(
    State(app): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let server = &app.config.server;
    if server.admin_token.is_none() && server.admin_read_token.is_none() {
        return Err(ApiError::unauthorized(
            "admin_disabled",
            "the admin API is disabled: set server.admin_token",
        ));
    }
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let matches = |token: &Option<crate::secret::Secret>| {
        token
            .as_ref()
            .is_some_and(|token| same_secret(given, token.expose()))
    };
    if matches(&server.admin_token) {
        return Ok(next.run(request).await);
    }
    if matches(&server.admin_read_token) {
        if request.method() == axum::http::Method::GET
            || request.method() == axum::http::Method::HEAD
        {
            return Ok(next.run(request).await);
        }
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "read_only",
            "this token may only read: replay, pause, resume, reload and pushes need server.admin_token",
        ));
    }
    Err(ApiError::unauthorized(
        "unauthorized",
        "missing or wrong bearer token",
    ))
}

/// Compares SHA-256 digests in constant time, so neither a token's bytes nor its length
/// show in the time an answer takes.
fn same_secret(given: &str, expected: &str) -> bool {
    use sha2::{Digest as _, Sha256};
    bool::from(
        Sha256::digest(given.as_bytes())
            .as_slice()
            .ct_eq(Sha256::digest(expected.as_bytes()).as_slice()),
    )
}

/// Each connector's counts by status, over the retention window and the last 24 hours
/// (by the hour), keyed by connector; empty when the engine cannot count without reading
/// the log.
async fn counts(app: &App) -> Result<std::collections::HashMap<String, Value>, ApiError> {
    let since = crate::time::now_ms().saturating_sub(24 * 3_600_000);
    let Some(counts) = app.storage.counts(since).await? else {
        return Ok(Default::default());
    };
    let by_status = |counts: &crate::store::tally::Counts| -> Value {
        Status::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), json!(counts[s.index()])))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    Ok(counts
        .iter()
        .map(|(id, (all, recent))| {
            (
                id.clone(),
                json!({ "retention": by_status(all), "last_24h": by_status(recent) }),
            )
        })
        .collect())
}

/// What `GET /v1/connectors` adds to a connector: its counts (zeros when it has no
/// events) and its latest failed delivery try on this host.
fn with_activity(
    mut body: Value,
    app: &App,
    counts: &std::collections::HashMap<String, Value>,
) -> Value {
    let id = body["id"].as_str().unwrap_or_default().to_string();
    body["counts"] = counts.get(&id).cloned().unwrap_or_else(|| {
        let zeros: serde_json::Map<_, _> = Status::ALL
            .iter()
            .map(|s| (s.as_str().to_string(), json!(0)))
            .collect();
        json!({ "retention": zeros, "last_24h": zeros })
    });
    body["last_delivery_error"] = app
        .last_delivery_errors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&id)
        .map_or(Value::Null, |e| json!(e));
    body
}

fn connector_json(connector: &crate::plugin::Connector) -> Value {
    let plugin = connector.plugin.as_ref();
    json!({
        "id": connector.config.id,
        "enabled": connector.config.enabled,
        "paused": connector.config.paused,
        "plugin": connector.config.plugin,
        "name": plugin.map(|p| p.manifest.name.clone()),
        "version": plugin.map(|p| p.manifest.version.clone()),
        "digest": plugin.map(|p| p.digest.clone()),
        "scheme": connector.verifier.as_ref().ok().map(|v| v.scheme.name()),
        "loaded_at": plugin.map(|p| p.loaded_at),
        "size": plugin.map(|p| p.size),
        "last_error": connector.last_error.as_deref().or(connector.unavailable()),
    })
}

/// Every configured connector; disabled ones show `"enabled": false` and nothing loaded.
async fn list_connectors(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    let counts = counts(&app).await?;
    let data: Vec<Value> = app
        .connector_configs()
        .iter()
        .map(|config| match app.connectors.get(&config.id) {
            Some(connector) => connector_json(&connector),
            None => json!({
                "id": config.id,
                "enabled": config.enabled,
                "paused": config.paused,
                "plugin": config.plugin,
            }),
        })
        .map(|body| with_activity(body, &app, &counts))
        .collect();
    Ok(Json(json!({
        "data": data,
        "config_error": app.last_config_error.load().as_deref(),
        "reloads": app.reloads.load(std::sync::atomic::Ordering::Relaxed),
    })))
}

async fn show_connector(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let connector = app
        .connectors
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no enabled connector `{id}`")))?;
    let counts = counts(&app).await?;
    Ok(Json(with_activity(
        connector_json(&connector),
        &app,
        &counts,
    )))
}

/// The whole record: request, verification, dedupe key, attempts and deliveries.
async fn show_event(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let mut record = app
        .storage
        .event(&id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no event `{id}`")))?;
    let request = app.storage.request(&id).await?;
    let mut deliveries = app.storage.deliveries(&id).await?;
    // Deliveries keep their credentials to be sent; the log shows only their names, and
    // the connector's secret settings as `****`.
    let secrets = app
        .connectors
        .get(&record.connector)
        .map(|c| c.grants.secrets.clone())
        .unwrap_or_default();
    let redact = |text: &mut String| *text = crate::secret::redact(text, &secrets).into_owned();
    for delivery in &mut deliveries {
        crate::store::mask_secret_headers(&mut delivery.request.headers);
        crate::plugin::redact_request(&mut delivery.request, &secrets);
        delivery
            .attempts
            .iter_mut()
            .filter_map(|a| a.error.as_mut())
            .for_each(redact);
    }
    // What the connector said when it failed may quote a setting too.
    record
        .attempts
        .iter_mut()
        .filter_map(|a| a.message.as_mut())
        .for_each(redact);
    record.error.iter_mut().for_each(redact);
    let mut body = serde_json::to_value(&record).unwrap_or_default();
    body["request"] = serde_json::to_value(&request).unwrap_or_default();
    body["deliveries"] = serde_json::to_value(&deliveries).unwrap_or_default();
    Ok(Json(body))
}

/// Query parameters of `GET /v1/events` (and the body of `POST /v1/replay`).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventFilter {
    /// `POST /v1/replay` only: new `Idempotency-Key`s for the replayed runs.
    #[serde(default)]
    new_keys: bool,
    connector: Option<String>,
    status: Option<String>,
    /// RFC 3339 (`2026-11-29T10:00:00Z`) or unix seconds.
    since: Option<String>,
    until: Option<String>,
    limit: Option<usize>,
    cursor: Option<String>,
    /// The dedupe key: a Stripe `evt_…`, a `webhook-id` (an index lookup).
    key: Option<String>,
    /// An `Idempotency-Key` Switchyard sent (`{event id}-{n}`): the event behind it.
    delivery_key: Option<String>,
    /// Text in the request body (a bounded scan: see [`search_payloads`]).
    q: Option<String>,
}

/// Largest page.
const MAX_LIMIT: usize = 1000;

/// Events one `?q=` request reads at most; past that the answer carries a cursor to go on
/// from (with fewer results than `limit`, possibly none).
const MAX_SEARCHED: usize = 2_000;

impl EventFilter {
    fn query(&self) -> Result<EventQuery, ApiError> {
        let bad = |what: &str, value: &str| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_query",
                format!("{what}: cannot parse {value:?}"),
            )
        };
        let status = match self.status.as_deref() {
            None => None,
            Some(s) => Some(
                serde_json::from_value::<Status>(Value::String(s.to_string())).map_err(|_| {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "invalid_query",
                        format!(
                            "status must be one of pending, retrying, succeeded, dead, duplicate, rejected; not {s:?}"
                        ),
                    )
                })?,
            ),
        };
        let time = |what: &str, value: &Option<String>| -> Result<Option<u64>, ApiError> {
            match value.as_deref() {
                None => Ok(None),
                Some(v) => parse_time(v).map(Some).ok_or_else(|| bad(what, v)),
            }
        };
        Ok(EventQuery {
            connector: self.connector.clone(),
            status,
            since: time("since", &self.since)?,
            until: time("until", &self.until)?,
            limit: self.limit.unwrap_or(100).clamp(1, MAX_LIMIT),
            cursor: self.cursor.clone(),
            key: self.key.clone(),
        })
    }
}

/// RFC 3339 or unix seconds → unix ms.
fn parse_time(value: &str) -> Option<u64> {
    if let Ok(seconds) = value.parse::<u64>() {
        return seconds.checked_mul(1000);
    }
    let at = humantime::parse_rfc3339_weak(value).ok()?;
    at.duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_millis() as u64)
}

/// `GET /v1/events`: newest first, cursor-paginated. Records without request bodies
/// (`GET /v1/events/{id}` has the whole record).
async fn list_events(
    State(app): State<Arc<App>>,
    filter: Result<Query<EventFilter>, QueryRejection>,
) -> Result<Json<Value>, ApiError> {
    let Query(filter) = filter?;
    let query = filter.query()?;
    let (page, next) = match (&filter.delivery_key, &filter.q) {
        (Some(key), _) => by_delivery_key(&app, key, &query).await?,
        (None, Some(text)) if !text.is_empty() => search_payloads(&app, text, query).await?,
        _ => app.storage.list_events(&query).await?,
    };
    Ok(Json(json!({ "data": page, "next_cursor": next })))
}

/// The event behind an `Idempotency-Key` we sent. Keys are `{event id}-{n}` (see
/// `lifecycle::idempotency_key`), so the event is read by id, and the key must be one its
/// deliveries carry; the other filters apply as to any page.
async fn by_delivery_key(
    app: &App,
    key: &str,
    query: &EventQuery,
) -> Result<(Vec<EventRecord>, Option<String>), ApiError> {
    let Some((id, _)) = key.rsplit_once('-') else {
        return Ok((Vec::new(), None));
    };
    if ulid::Ulid::from_string(id).is_err() {
        return Ok((Vec::new(), None));
    }
    let Some(record) = app.storage.event(id).await? else {
        return Ok((Vec::new(), None));
    };
    let deliveries = app.storage.deliveries(id).await?;
    if !deliveries.iter().any(|d| d.idempotency_key == key) {
        return Ok((Vec::new(), None));
    }
    Ok(crate::store::page_of(vec![record], query))
}

/// Events whose request body contains `text` (bytes, case-sensitive), within the other
/// filters: pages of the log are read and each event's request checked, at most
/// [`MAX_SEARCHED`] events per call. The cursor then points past the last event read, so a
/// caller pages on through the log as with any other filter.
async fn search_payloads(
    app: &App,
    text: &str,
    mut query: EventQuery,
) -> Result<(Vec<EventRecord>, Option<String>), ApiError> {
    let limit = query.limit;
    let needle = text.as_bytes();
    let (mut found, mut searched) = (Vec::new(), 0usize);
    query.limit = 200.min(MAX_SEARCHED);
    loop {
        let (page, next) = app.storage.list_events(&query).await?;
        for record in page {
            searched += 1;
            let cursor = record.id.clone();
            let hit = app
                .storage
                .request(&record.id)
                .await?
                .is_some_and(|r| contains(r.body.as_bytes(), needle));
            if hit {
                found.push(record);
            }
            if found.len() == limit || searched >= MAX_SEARCHED {
                return Ok((found, Some(cursor)));
            }
        }
        match next {
            Some(next) => query.cursor = Some(next),
            None => return Ok((found, None)),
        }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fn replay_error(err: ReplayError) -> ApiError {
    match err {
        ReplayError::NotFound(_) => ApiError::not_found(err.to_string()),
        ReplayError::NotReplayable(..) => {
            ApiError::new(StatusCode::CONFLICT, "not_replayable", err.to_string())
        }
        ReplayError::Store(err) => err.into(),
    }
}

/// The optional body of `POST /v1/events/{id}/replay`.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct ReplayOptions {
    /// New `Idempotency-Key`s for the new run's deliveries: a deliberate new effect. By
    /// default a replay sends the keys the event's first run sent.
    #[serde(default)]
    new_keys: bool,
}

/// `POST /v1/events/{id}/replay` (optionally `{"new_keys": true}`) → 202: the event goes
/// back to its connector.
async fn replay_event(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let options: ReplayOptions = if body.iter().all(u8::is_ascii_whitespace) {
        ReplayOptions::default()
    } else {
        serde_json::from_slice(&body).map_err(|err| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", err.to_string())
        })?
    };
    let record = app
        .storage
        .replay(&id, options.new_keys)
        .await
        .map_err(replay_error)?;
    app.storage.sync().await.map_err(ApiError::unavailable)?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "id": record.id, "status": record.status })),
    ))
}

/// `POST /v1/replay` with `{"connector","status","since","until","key","new_keys"}` → 202
/// and the count.
/// Only `succeeded` and `dead` events are replayed; others matching the filter are skipped.
async fn replay_many(
    State(app): State<Arc<App>>,
    filter: Result<Json<EventFilter>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Json(filter) = filter?;
    if filter.q.is_some() || filter.delivery_key.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "a bulk replay filters by connector, status, time and key; replay an event found \
             by `q` or `delivery_key` by its id",
        ));
    }
    let mut query = filter.query()?;
    query.limit = MAX_LIMIT;
    query.cursor = None;
    let mut ids = Vec::new();
    loop {
        let (page, next) = app.storage.list_events(&query).await?;
        for record in page {
            match app.storage.replay(&record.id, filter.new_keys).await {
                Ok(_) => ids.push(record.id),
                Err(ReplayError::NotReplayable(..)) => {}
                Err(err) => return Err(replay_error(err)),
            }
        }
        match next {
            Some(cursor) => query.cursor = Some(cursor),
            None => break,
        }
    }
    app.storage.sync().await.map_err(ApiError::unavailable)?;
    Ok((StatusCode::ACCEPTED, Json(json!({ "replayed": ids.len() }))))
}

/// `POST /v1/plugins/{name}` with a `.wasm` body → 202 `{"name","digest"}`: a new build
/// for every host. It is checked first (compiled, its world checked, `manifest()` run in
/// the sandbox: 422 if the host would refuse it). On NATS it goes to the cluster's store,
/// which every host copies into its `plugins.dir` and reloads; on sled, into this host's
/// `plugins.dir` (written to a temporary name, then renamed), and reloaded.
async fn push_plugin(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    use crate::store::nats::plugins;
    if !plugins::valid_name(&name) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_name",
            format!(
                "`{name}` is not a plugin file name (letters, digits, `-`, `_`, ending in .wasm)"
            ),
        ));
    }
    let grants = Arc::new(crate::plugin::Grants {
        connector: "push".into(),
        settings: Default::default(),
        secrets: Vec::new(),
        allowed_hosts: crate::plugin::AllowedHosts::default(),
        storage: app.storage.clone(),
        http: app.http.clone(),
        fetch_timeout: std::time::Duration::from_secs(5),
    });
    let plugin = app.runtime.load(&body, grants).await.map_err(|err| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_plugin",
            format!("not a loadable connector: {err}"),
        )
    })?;
    match app.config.storage.backend {
        crate::config::Backend::Nats => {
            let store = plugins::Plugins::open(&app.config.storage).await?;
            store.push(&name, &body).await?;
        }
        crate::config::Backend::Sled => {
            let dir = &app.config.plugins.dir;
            let tmp = dir.join(format!(".{name}.tmp"));
            std::fs::write(&tmp, &body)
                .and_then(|()| std::fs::rename(&tmp, dir.join(&name)))
                .map_err(|err| {
                    crate::store::StoreError::Unavailable(format!("writing {name}: {err}"))
                })?;
            let _ = app.reload(None).await;
        }
    }
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({ "name": name, "digest": plugin.digest })),
    ))
}

/// `POST /v1/reload`: re-read the config file and every plugin; answers what changed.
/// A config that does not load is refused (422) and the running one stays.
async fn reload_all(State(app): State<Arc<App>>) -> Result<Json<Value>, ApiError> {
    let report = app
        .reload(None)
        .await
        .map_err(|err| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_config", err))?;
    app.announce_reload().await;
    Ok(Json(serde_json::to_value(report).unwrap_or_default()))
}

/// `POST /v1/connectors/{id}/reload`: load this connector's `.wasm` again.
async fn reload_connector(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    if app.connectors.get(&id).is_none() {
        return Err(ApiError::not_found(format!("no enabled connector `{id}`")));
    }
    app.reload(Some(&id))
        .await
        .map_err(|err| ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "reload_failed", err))?;
    app.announce_reload().await;
    let connector = app.connectors.get(&id).ok_or_else(|| {
        ApiError::not_found(format!("connector `{id}` was removed by the reload"))
    })?;
    Ok(Json(connector_json(&connector)))
}

async fn set_paused(app: &App, id: &str, paused: bool) -> Result<Json<Value>, ApiError> {
    let connector = app
        .set_paused(id, paused)
        .await
        .map_err(ApiError::not_found)?;
    Ok(Json(connector_json(&connector)))
}

/// `POST /v1/connectors/{id}/pause`: keep accepting and storing, dispatch nothing.
async fn pause_connector(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_paused(&app, &id, true).await
}

/// `POST /v1/connectors/{id}/resume`: dispatch again, starting with what waited.
async fn resume_connector(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    set_paused(&app, &id, false).await
}
