//! The admin API under `/v1` (bearer `server.admin_token`), plus the unauthenticated
//! `GET /v1/health`. Without an `admin_token` configured, every authenticated route
//! answers 401: the API is off rather than open. `server.admin_read_token` may only read:
//! anything but `GET` and `HEAD` answers it 403.
//!
//! Every answer under `/v1` carries the rate-limit headers, and a `GET`'s an `ETag`
//! ([`http`]).

pub mod api;
pub mod http;

use std::sync::Arc;

use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse as _, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::Value;
use subtle::ConstantTimeEq;

use utoipa::OpenApi as _;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use self::api::{
    ConnectorCounts, ConnectorList, ConnectorView, DestinationList, ErrorBody, EventDetail,
    EventPage, Health, Pushed, Replayed, Replaying, Session,
};
use crate::app::{App, ControlError, ReloadReport};
use crate::destination::DestinationState;
use crate::error::ApiError;
use crate::store::{EventQuery, EventRecord, ReplayError, Status};

pub fn routes(app: Arc<App>) -> Router<Arc<App>> {
    // The admin API's own: requests per client address (`server.admin_rate_limit`).
    let limiter = Arc::new(http::RateLimiter::per_minute(
        app.config.server.admin_rate_limit,
    ));
    let (authed, _) = documented()
        .route_layer(middleware::from_fn_with_state(app, require_token))
        .split_for_parts();
    Router::new()
        .route("/v1/health", get(health))
        .route("/v1/openapi.json", get(openapi_json))
        .merge(authed)
        .layer(middleware::from_fn(http::etag))
        .layer(middleware::from_fn_with_state(limiter, http::rate_limit))
}

/// The routes that need a token, each registered with its documentation.
fn documented() -> OpenApiRouter<Arc<App>> {
    let push = OpenApiRouter::new().routes(routes!(push_plugin)).layer(
        axum::extract::DefaultBodyLimit::max(crate::store::nats::plugins::MAX_BUILD_BYTES),
    );
    OpenApiRouter::with_openapi(api::ApiDoc::openapi())
        .routes(routes!(list_connectors))
        .routes(routes!(show_connector))
        .routes(routes!(reload_connector))
        .routes(routes!(pause_connector))
        .routes(routes!(resume_connector))
        .routes(routes!(reload_all))
        .routes(routes!(list_destinations))
        .routes(routes!(show_destination))
        .routes(routes!(enable_destination))
        .routes(routes!(disable_destination))
        .routes(routes!(list_events))
        .routes(routes!(activity))
        .routes(routes!(session))
        .routes(routes!(show_event))
        .routes(routes!(replay_event))
        .routes(routes!(replay_many))
        .merge(push)
}

/// The OpenAPI 3.1 document of the admin API: the documented routes, and the two that
/// need no token.
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = documented().into_openapi();
    doc.merge(PublicDoc::openapi());
    doc
}

#[derive(utoipa::OpenApi)]
#[openapi(paths(health, openapi_json))]
struct PublicDoc;

/// `GET /v1/openapi.json` (no token: it holds no secret).
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "This document", content_type = "application/json"))
)]
async fn openapi_json() -> Response {
    static DOCUMENT: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    let body = DOCUMENT.get_or_init(|| openapi().to_json().unwrap_or_default());
    ([(header::CONTENT_TYPE, "application/json")], body.clone()).into_response()
}

/// `GET /v1/health` (no token): the host answers.
#[utoipa::path(get, path = "/v1/health", tag = "meta", responses((status = 200, body = Health)))]
async fn health() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
    })
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
    let access = if matches(&server.admin_token) {
        Access::Admin
    } else if matches(&server.admin_read_token) {
        Access::Read
    } else {
        return Err(ApiError::unauthorized(
            "unauthorized",
            "missing or wrong bearer token",
        ));
    };
    let reads =
        request.method() == axum::http::Method::GET || request.method() == axum::http::Method::HEAD;
    if access == Access::Read && !reads {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "read_only",
            "this token may only read: replay, pause, resume, reload and pushes need server.admin_token",
        ));
    }
    let mut request = request;
    request.extensions_mut().insert(access);
    Ok(next.run(request).await)
}

/// What the token of a request may do: `admin` everything, `read` only `GET`s.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    Admin,
    Read,
}

/// `GET /v1/session`: what the bearer token may do, so a client (the console) shows only
/// the actions it may take.
#[utoipa::path(
    get,
    path = "/v1/session",
    tag = "meta",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = Session),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
async fn session(axum::Extension(access): axum::Extension<Access>) -> Json<Session> {
    Json(Session { access })
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
/// (by the hour), keyed by connector; `None` when the engine cannot count without reading
/// the log.
async fn counts(
    app: &App,
) -> Result<Option<std::collections::HashMap<String, ConnectorCounts>>, ApiError> {
    let since = crate::time::now_ms().saturating_sub(24 * 3_600_000);
    Ok(app.storage.counts(since).await?.map(|counts| {
        counts
            .iter()
            .map(|(id, (all, recent))| {
                let counts = ConnectorCounts {
                    retention: all.into(),
                    last_24h: recent.into(),
                };
                (id.clone(), counts)
            })
            .collect()
    }))
}

/// A connector as the API shows it: its config, what is loaded, its counts (zeros when it
/// has no events) and its latest failed delivery try on this host.
fn connector_view(
    app: &App,
    config: &crate::config::ConnectorConfig,
    counts: &mut Option<std::collections::HashMap<String, ConnectorCounts>>,
) -> ConnectorView {
    let connector = app.connectors.get(&config.id);
    let connector = connector.as_deref();
    let plugin = connector.and_then(|c| c.state.plugin());
    ConnectorView {
        id: config.id.clone(),
        enabled: config.enabled,
        paused: connector.map_or(config.paused, |c| c.paused),
        plugin: config.plugin.clone(),
        name: plugin.map(|p| p.manifest.name.clone()),
        version: plugin.map(|p| p.manifest.version.clone()),
        digest: plugin.map(|p| p.digest.clone()),
        scheme: connector.and_then(|c| c.state.scheme()).map(str::to_owned),
        loaded_at: plugin.map(|p| p.loaded_at),
        size: plugin.map(|p| p.size as u64),
        last_error: connector
            .and_then(|c| c.state.load_error().or(c.unavailable()))
            .map(str::to_owned),
        counts: counts
            .as_mut()
            .map(|counts| counts.remove(&config.id).unwrap_or_default()),
        last_delivery_error: app
            .last_delivery_errors
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&config.id)
            .cloned(),
    }
}

/// Every configured connector; disabled ones show `"enabled": false` and nothing loaded.
#[utoipa::path(
    get,
    path = "/v1/connectors",
    tag = "connectors",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = ConnectorList),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
async fn list_connectors(State(app): State<Arc<App>>) -> Result<Json<ConnectorList>, ApiError> {
    let mut counts = counts(&app).await?;
    let data = app
        .connector_configs()
        .iter()
        .map(|config| connector_view(&app, config, &mut counts))
        .collect();
    Ok(Json(ConnectorList {
        data,
        config_error: app.last_config_error.load().as_deref().map(str::to_owned),
        reloads: app.reloads.load(std::sync::atomic::Ordering::Relaxed),
    }))
}

/// One enabled connector.
#[utoipa::path(
    get,
    path = "/v1/connectors/{id}",
    tag = "connectors",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The connector id")),
    responses(
        (status = 200, body = ConnectorView),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
async fn show_connector(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<ConnectorView>, ApiError> {
    enabled_connector_view(&app, &id).await
}

/// The view of enabled connector `id`, or 404.
async fn enabled_connector_view(app: &App, id: &str) -> Result<Json<ConnectorView>, ApiError> {
    let config = app
        .connectors
        .get(id)
        .map(|c| c.config.clone())
        .ok_or_else(|| ApiError::not_found(format!("no enabled connector `{id}`")))?;
    let mut counts = counts(app).await?;
    Ok(Json(connector_view(app, &config, &mut counts)))
}

/// The whole record: request, verification, dedupe key, attempts and deliveries.
#[utoipa::path(
    get,
    path = "/v1/events/{id}",
    tag = "events",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The event id")),
    responses(
        (status = 200, body = EventDetail),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
async fn show_event(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<EventDetail>, ApiError> {
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
    let body = EventDetail {
        record,
        request,
        deliveries,
    };
    Ok(Json(body))
}

/// Query parameters of `GET /v1/events` (and the body of `POST /v1/replay`).
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EventFilter {
    /// `POST /v1/replay` only: new `Idempotency-Key`s for the replayed runs.
    #[serde(default)]
    #[param(ignore)]
    new_keys: bool,
    connector: Option<String>,
    /// `pending`, `retrying`, `succeeded`, `dead`, `duplicate` or `rejected`.
    status: Option<String>,
    /// RFC 3339 (`2026-11-29T10:00:00Z`) or unix seconds.
    since: Option<String>,
    until: Option<String>,
    /// At most this many (1 to 1,000; 100 by default).
    limit: Option<usize>,
    /// The `next_cursor` of the previous page.
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

/// Events a `?q=` search reads per page of the log.
const SEARCH_PAGE: usize = 200;

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

/// Query of `GET /v1/activity`.
#[derive(Debug, Default, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ActivityQuery {
    /// `1h` (by the minute, the default) or `24h` (by the quarter hour).
    #[param(value_type = Option<String>)]
    window: Option<crate::activity::Window>,
}

/// `GET /v1/activity?window=1h|24h`: this host's webhooks by outcome, delivery attempts
/// by outcome and their latency, bucketed over the window (the console's chart). Kept in
/// memory since the host started; the event log is the durable record.
#[utoipa::path(
    get,
    path = "/v1/activity",
    tag = "meta",
    security(("admin_token" = [])),
    params(ActivityQuery),
    responses(
        (status = 200, body = crate::activity::ActivityReport),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
async fn activity(
    State(app): State<Arc<App>>,
    query: Result<Query<ActivityQuery>, QueryRejection>,
) -> Result<Json<crate::activity::ActivityReport>, ApiError> {
    let Query(query) = query?;
    Ok(Json(
        app.metrics
            .activity
            .report(query.window.unwrap_or_default()),
    ))
}

/// `GET /v1/events`: newest first, cursor-paginated. Records without request bodies
/// (`GET /v1/events/{id}` has the whole record).
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "events",
    security(("admin_token" = [])),
    params(EventFilter),
    responses(
        (status = 200, body = EventPage),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
async fn list_events(
    State(app): State<Arc<App>>,
    filter: Result<Query<EventFilter>, QueryRejection>,
) -> Result<Json<EventPage>, ApiError> {
    let Query(filter) = filter?;
    let query = filter.query()?;
    let (page, next) = match (&filter.delivery_key, &filter.q) {
        (Some(key), _) => by_delivery_key(&app, key, &query).await?,
        (None, Some(text)) if !text.is_empty() => search_payloads(&app, text, query).await?,
        _ => app.storage.list_events(&query).await?,
    };
    Ok(Json(EventPage {
        data: page,
        next_cursor: next,
    }))
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
    query.limit = SEARCH_PAGE;
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
#[derive(Debug, Default, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct ReplayOptions {
    /// New `Idempotency-Key`s for the new run's deliveries: a deliberate new effect. By
    /// default a replay sends the keys the event's first run sent.
    #[serde(default)]
    new_keys: bool,
}

/// `POST /v1/events/{id}/replay` (optionally `{"new_keys": true}`) → 202: the event goes
/// back to its connector.
#[utoipa::path(
    post,
    path = "/v1/events/{id}/replay",
    tag = "events",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The event id")),
    request_body(content = Option<ReplayOptions>, description = "Optional; empty keeps the first run's keys"),
    responses(
        (status = 202, body = Replaying),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "Not replayable: pending, rejected or a duplicate"),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
async fn replay_event(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Replaying>), ApiError> {
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
    app.storage.sync().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Replaying {
            id: record.id,
            status: record.status,
        }),
    ))
}

/// `POST /v1/replay` with `{"connector","status","since","until","key","new_keys"}` → 202
/// and the count; with `limit` (and `cursor`), one page of the log per call.
/// Only `succeeded` and `dead` events are replayed; others matching the filter are skipped.
#[utoipa::path(
    post,
    path = "/v1/replay",
    tag = "events",
    security(("admin_token" = [])),
    request_body = EventFilter,
    responses(
        (status = 202, body = Replayed),
        (status = 400, body = ErrorBody),
        (status = 415, body = ErrorBody, description = "The body is not sent as application/json"),
        (status = 422, body = ErrorBody, description = "The body is JSON, but not a filter"),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
async fn replay_many(
    State(app): State<Arc<App>>,
    filter: Result<Json<EventFilter>, JsonRejection>,
) -> Result<(StatusCode, Json<Replayed>), ApiError> {
    let Json(filter) = filter?;
    if filter.q.is_some() || filter.delivery_key.is_some() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            "a bulk replay filters by connector, status, time and key; replay an event found \
             by `q` or `delivery_key` by its id",
        ));
    }
    // With `limit`, one page (from `cursor`) per call, and the cursor to go on from;
    // without, every match in one call.
    let paged = filter.limit.is_some();
    let mut query = filter.query()?;
    if !paged {
        query.limit = MAX_LIMIT;
        query.cursor = None;
    }
    let (mut replayed, mut read) = (0, 0);
    let next_cursor = loop {
        let (page, next) = app.storage.list_events(&query).await?;
        for record in page {
            read += 1;
            match app.storage.replay(&record.id, filter.new_keys).await {
                Ok(_) => replayed += 1,
                Err(ReplayError::NotReplayable(..)) => {}
                Err(err) => return Err(replay_error(err)),
            }
        }
        match next {
            Some(cursor) if !paged => query.cursor = Some(cursor),
            next => break next,
        }
    };
    app.storage.sync().await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Replayed {
            replayed,
            read,
            next_cursor,
        }),
    ))
}

/// `POST /v1/plugins/{name}` with a `.wasm` body → 202 `{"name","digest"}`: a new build
/// for every host. It is checked first (compiled, its world checked, `manifest()` run in
/// the sandbox: 422 if the host would refuse it). On NATS it goes to the cluster's store,
/// which every host copies into its `plugins.dir` and reloads; on sled, into this host's
/// `plugins.dir` (written to a temporary name, then renamed), and reloaded.
#[utoipa::path(
    post,
    path = "/v1/plugins/{name}",
    tag = "connectors",
    security(("admin_token" = [])),
    params(("name" = String, Path, description = "The plugin file name, e.g. `stripe.wasm`")),
    request_body(content = Vec<u8>, content_type = "application/wasm"),
    responses(
        (status = 202, body = Pushed),
        (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 413, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "The host would refuse this build"),
        (status = 429, body = ErrorBody),
        (status = 503, body = ErrorBody),
    )
)]
async fn push_plugin(
    State(app): State<Arc<App>>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Pushed>), ApiError> {
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
        kv: crate::store::Kv::new(app.storage.clone(), "push"),
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
        Json(Pushed {
            name,
            digest: plugin.digest.clone(),
        }),
    ))
}

/// `POST /v1/reload`: re-read the config file and every plugin; answers what changed.
/// A config that does not load is refused (422) and the running one stays.
#[utoipa::path(
    post,
    path = "/v1/reload",
    tag = "connectors",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = ReloadReport),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "The config does not load; the running one stays"),
        (status = 429, body = ErrorBody),
    )
)]
async fn reload_all(State(app): State<Arc<App>>) -> Result<Json<ReloadReport>, ApiError> {
    let report = app.reload(None).await?;
    app.announce_reload().await;
    Ok(Json(report))
}

/// `POST /v1/connectors/{id}/reload`: load this connector's `.wasm` again.
#[utoipa::path(
    post,
    path = "/v1/connectors/{id}/reload",
    tag = "connectors",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The connector id")),
    responses(
        (status = 200, body = ConnectorView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 422, body = ErrorBody, description = "The build does not load; the running one stays"),
        (status = 429, body = ErrorBody),
    )
)]
async fn reload_connector(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<ConnectorView>, ApiError> {
    if app.connectors.get(&id).is_none() {
        return Err(ApiError::not_found(format!("no enabled connector `{id}`")));
    }
    app.reload(Some(&id)).await.map_err(|err| match err {
        ControlError::InvalidConfig(message) => {
            ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "reload_failed", message)
        }
        err => err.into(),
    })?;
    app.announce_reload().await;
    enabled_connector_view(&app, &id).await
}

async fn set_paused(app: &App, id: &str, paused: bool) -> Result<Json<ConnectorView>, ApiError> {
    app.set_paused(id, paused).await?;
    enabled_connector_view(app, id).await
}

/// `POST /v1/connectors/{id}/pause`: keep accepting and storing, dispatch nothing.
#[utoipa::path(
    post,
    path = "/v1/connectors/{id}/pause",
    tag = "connectors",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The connector id")),
    responses(
        (status = 200, body = ConnectorView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
async fn pause_connector(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<ConnectorView>, ApiError> {
    set_paused(&app, &id, true).await
}

/// `POST /v1/connectors/{id}/resume`: dispatch again, starting with what waited.
#[utoipa::path(
    post,
    path = "/v1/connectors/{id}/resume",
    tag = "connectors",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The connector id")),
    responses(
        (status = 200, body = ConnectorView),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
async fn resume_connector(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<ConnectorView>, ApiError> {
    set_paused(&app, &id, false).await
}

/// Every `[[destination]]`: its breaker, limits, tries and last error on this host.
#[utoipa::path(
    get,
    path = "/v1/destinations",
    tag = "destinations",
    security(("admin_token" = [])),
    responses(
        (status = 200, body = DestinationList),
        (status = 401, body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
async fn list_destinations(State(app): State<Arc<App>>) -> Json<DestinationList> {
    Json(DestinationList {
        data: app.destinations.all().iter().map(|d| d.state()).collect(),
    })
}

/// One destination.
#[utoipa::path(
    get,
    path = "/v1/destinations/{id}",
    tag = "destinations",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The destination id")),
    responses(
        (status = 200, body = DestinationState),
        (status = 401, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
async fn show_destination(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<DestinationState>, ApiError> {
    app.destinations
        .get(&id)
        .map(|d| Json(d.state()))
        .ok_or_else(|| ControlError::NoDestination(id).into())
}

async fn set_destination_enabled(
    app: &App,
    id: &str,
    enabled: bool,
) -> Result<Json<DestinationState>, ApiError> {
    // Stored: other hosts on NATS follow it within a second (`App::follow_cluster`).
    Ok(Json(app.set_destination_enabled(id, enabled).await?))
}

/// `POST /v1/destinations/{id}/enable`: its breaker closes and its kept deliveries flow.
#[utoipa::path(
    post,
    path = "/v1/destinations/{id}/enable",
    tag = "destinations",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The destination id")),
    responses(
        (status = 200, body = DestinationState),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
async fn enable_destination(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<DestinationState>, ApiError> {
    set_destination_enabled(&app, &id, true).await
}

/// `POST /v1/destinations/{id}/disable`: its deliveries wait (kept) until it is enabled.
#[utoipa::path(
    post,
    path = "/v1/destinations/{id}/disable",
    tag = "destinations",
    security(("admin_token" = [])),
    params(("id" = String, Path, description = "The destination id")),
    responses(
        (status = 200, body = DestinationState),
        (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody),
        (status = 404, body = ErrorBody),
        (status = 429, body = ErrorBody),
    )
)]
async fn disable_destination(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<DestinationState>, ApiError> {
    set_destination_enabled(&app, &id, false).await
}
