//! The admin API under `/v1` (bearer `server.admin_token`), plus the unauthenticated
//! `GET /v1/health`. Without an `admin_token` configured, every authenticated route
//! answers 401: the API is off rather than open.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

use crate::app::App;
use crate::error::ApiError;

pub fn routes(app: Arc<App>) -> Router<Arc<App>> {
    let authed = Router::new()
        .route("/v1/connectors", get(list_connectors))
        .route("/v1/connectors/{id}", get(show_connector))
        .route("/v1/events/{id}", get(show_event))
        .route_layer(middleware::from_fn_with_state(app, require_token));
    Router::new().route("/v1/health", get(health)).merge(authed)
}

async fn health() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

async fn require_token(
    State(app): State<Arc<App>>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let Some(expected) = &app.config.server.admin_token else {
        return Err(ApiError::unauthorized(
            "admin_disabled",
            "the admin API is disabled: set server.admin_token",
        ));
    };
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    if bool::from(given.as_bytes().ct_eq(expected.expose().as_bytes())) {
        Ok(next.run(request).await)
    } else {
        Err(ApiError::unauthorized(
            "unauthorized",
            "missing or wrong bearer token",
        ))
    }
}

fn connector_json(connector: &crate::plugin::Connector) -> Value {
    let plugin = connector.plugin.as_ref().ok();
    json!({
        "id": connector.config.id,
        "enabled": connector.config.enabled,
        "paused": connector.config.paused,
        "plugin": connector.config.plugin,
        "name": plugin.map(|p| p.manifest.name.clone()),
        "version": plugin.map(|p| p.manifest.version.clone()),
        "digest": plugin.map(|p| p.digest.clone()),
        "scheme": connector.verifier.as_ref().ok().map(|v| v.scheme.name()),
        "loaded_at": connector.loaded_at,
        "last_error": connector.unavailable(),
    })
}

async fn list_connectors(State(app): State<Arc<App>>) -> Json<Value> {
    let data: Vec<Value> = app
        .connectors
        .all()
        .iter()
        .map(|c| connector_json(c))
        .collect();
    Json(json!({ "data": data }))
}

async fn show_connector(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let connector = app
        .connectors
        .get(&id)
        .ok_or_else(|| ApiError::not_found(format!("no enabled connector `{id}`")))?;
    Ok(Json(connector_json(&connector)))
}

/// The whole record: request, verification, dedupe key, attempts and deliveries.
async fn show_event(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let internal = |err: crate::store::StoreError| {
        tracing::error!("reading event {id}: {err}");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "storage_error",
            "could not read the event",
        )
    };
    let record = app
        .storage
        .event(&id)
        .map_err(internal)?
        .ok_or_else(|| ApiError::not_found(format!("no event `{id}`")))?;
    let request = app.storage.request(&id).map_err(internal)?;
    let deliveries = app.storage.deliveries(&id).map_err(internal)?;
    let mut body = serde_json::to_value(&record).unwrap_or_default();
    body["request"] = serde_json::to_value(&request).unwrap_or_default();
    body["deliveries"] = serde_json::to_value(&deliveries).unwrap_or_default();
    Ok(Json(body))
}
