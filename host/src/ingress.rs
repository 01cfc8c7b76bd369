//! Ingress: `POST|GET|HEAD /hooks/{connector}`.
//!
//! `POST` is read up to `server.max_body_bytes` (413 beyond), verified (401), deduped,
//! stored, and answered 200 only once the store says it is durable (503 when it cannot).
//! `GET`/`HEAD` answer 200 with an empty body: Mailchimp and Mandrill validate a URL so.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::{Json, Router, routing::get};
use serde_json::json;
use ulid::Ulid;

use tracing::Instrument as _;

use crate::error::ApiError;
use crate::metrics::{Metrics, WebhookOutcome};
use crate::plugin::{Connector, ConnectorState, Registry, Runtime};
use crate::store::{
    EventRecord, Inserted, NewEvent, Status, Storage, StoredRequest, mask_secret_headers,
};
use crate::verify;

/// What ingress works with: the connectors (their verifiers and `dedupe-key`), the store,
/// the metrics, and the limits a request is held to.
#[derive(Clone)]
pub struct Ingress {
    pub storage: Arc<dyn Storage>,
    pub connectors: Arc<Registry>,
    pub runtime: Arc<Runtime>,
    pub metrics: Arc<Metrics>,
    /// `server.max_body_bytes`.
    pub max_body_bytes: usize,
    /// `server.body_timeout`.
    pub body_timeout: std::time::Duration,
    /// `storage.dedupe_window`.
    pub dedupe_window: std::time::Duration,
}

/// The ingress routes, over their own state (merged into any router).
pub fn routes<S>(ingress: Ingress) -> Router<S> {
    Router::new()
        .route("/hooks/{connector}", get(ping).head(ping).post(receive))
        .with_state(Arc::new(ingress))
}

/// A request whose signature has been checked. Only [`Verified::check`] builds one, so
/// nothing unverified can be stored as an event to dispatch.
pub struct Verified {
    request: StoredRequest,
}

impl Verified {
    fn check(
        verifier: &verify::Verifier,
        headers: &HeaderMap,
        request: StoredRequest,
    ) -> Result<Verified, Box<(StoredRequest, verify::VerifyError)>> {
        let checked = verifier.verify(
            &verify::Request {
                headers,
                query: &request.query,
                body: request.body.as_bytes(),
            },
            crate::time::now_s(),
        );
        match checked {
            Ok(()) => Ok(Verified { request }),
            Err(err) => Err(Box::new((request, err))),
        }
    }
}

fn connector_for(ingress: &Ingress, id: &str) -> Result<Arc<Connector>, ApiError> {
    ingress
        .connectors
        .get(id)
        .ok_or_else(|| ApiError::not_found(format!("no enabled connector `{id}`")))
}

async fn ping(
    State(ingress): State<Arc<Ingress>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    connector_for(&ingress, &id)?;
    Ok(StatusCode::OK.into_response())
}

/// `POST /hooks/{connector}`, counted in the metrics by its answer.
async fn receive(
    State(ingress): State<Arc<Ingress>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let started = std::time::Instant::now();
    // A debug span: an enabled span per request costs more than the HMAC check. Warnings
    // name the connector themselves. With traces exported it is the trace's root, a child
    // of the sender's `traceparent` if it sent one (`telemetry.rs`).
    let span = tracing::debug_span!("webhook", connector = %id, event_id = tracing::field::Empty);
    crate::telemetry::set_parent(
        &span,
        headers.get("traceparent").and_then(|v| v.to_str().ok()),
    );
    let answer = store_webhook(&ingress, &id, method, uri, headers, body)
        .instrument(span)
        .await;
    let outcome = match &answer {
        Ok((outcome, _)) => Some(*outcome),
        Err(err) => match err.status {
            StatusCode::NOT_FOUND => None,
            StatusCode::UNAUTHORIZED => Some(WebhookOutcome::Rejected),
            StatusCode::PAYLOAD_TOO_LARGE => Some(WebhookOutcome::TooLarge),
            StatusCode::REQUEST_TIMEOUT => Some(WebhookOutcome::Timeout),
            StatusCode::SERVICE_UNAVAILABLE => Some(WebhookOutcome::Unavailable),
            _ => Some(WebhookOutcome::Error),
        },
    };
    match outcome {
        Some(outcome) => ingress.metrics.webhook(&id, outcome, started.elapsed()),
        None => ingress.metrics.unknown_webhook(),
    }
    answer.map(|(_, response)| response)
}

async fn store_webhook(
    ingress: &Ingress,
    id: &str,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<(WebhookOutcome, Response), ApiError> {
    let connector = connector_for(ingress, id)?;
    let limit = ingress.max_body_bytes;
    let too_large = || {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!("body larger than {limit} bytes"),
        )
    };
    if let Some(length) = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && length > limit as u64
    {
        return Err(too_large());
    }
    // A body trickled in slowly would hold the connection (and its slot) for as long as
    // the sender likes: it has `server.body_timeout` to arrive whole.
    let timeout = ingress.body_timeout;
    let body: Bytes = tokio::time::timeout(timeout, axum::body::to_bytes(body, limit))
        .await
        .map_err(|_| {
            ApiError::new(
                StatusCode::REQUEST_TIMEOUT,
                "body_timeout",
                format!("the body did not arrive within {timeout:?}"),
            )
        })?
        .map_err(|_| too_large())?;
    let (plugin, verifier) = match &connector.state {
        ConnectorState::Ready {
            plugin, verifier, ..
        } => (plugin, verifier),
        ConnectorState::Unverifiable { reason, .. } | ConnectorState::NotLoaded { reason, .. } => {
            return Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "connector_unavailable",
                format!("connector `{id}` is not loaded: {reason}"),
            ));
        }
    };

    let now = crate::time::now_ms();
    let event_id = Ulid::new().to_string();
    tracing::Span::current().record("event_id", event_id.as_str());
    let mut request = StoredRequest {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or_default().to_string(),
        headers: headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_string(), value)
            })
            .collect(),
        body: body.to_vec().into(),
    };
    // Verification reads the raw `HeaderMap`; the stored copy never holds credentials.
    mask_secret_headers(&mut request.headers);
    let mut record = EventRecord::received(event_id, id.to_owned(), now, verifier.scheme.name());
    record.trace = crate::telemetry::traceparent();

    let checked = tracing::debug_span!("verify", scheme = verifier.scheme.name())
        .in_scope(|| Verified::check(verifier, &headers, request));
    let verified = match checked {
        Ok(verified) => verified,
        Err(rejected) => {
            let (mut request, err) = *rejected;
            // The token scheme carries its secret in the query: never store it.
            if matches!(verifier.scheme, verify::Scheme::Token) {
                request.query = redact_token(&request.query);
            }
            record.status = Status::Rejected;
            record.verification.verified = false;
            record.verification.error = Some(err.to_string());
            // Recorded before the answer, but a failure only logged: a rejection promises
            // the sender nothing.
            let recorded = ingress
                .storage
                .insert_event(NewEvent {
                    record,
                    request,
                    dedupe: None,
                })
                .instrument(tracing::debug_span!("store"));
            if let Err(store_err) = recorded.await {
                tracing::warn!(connector = %id, "recording a rejected request failed: {store_err}");
            }
            return Err(ApiError::unauthorized(err.code(), err.to_string()));
        }
    };
    let mut request = verified.request;

    // The connector names the dedupe key. A broken dedupe-key export must not lose the
    // event: it is stored without dedupe and the failure logged.
    let hook = crate::dispatch::webhook(&record, &request, 0);
    let dedupe = match ingress
        .runtime
        .dedupe_key(plugin, connector.grants.clone(), &hook)
        .await
    {
        Ok(key) => key,
        Err(err) => {
            tracing::warn!(connector = %id, "dedupe-key failed, storing without dedupe: {err}");
            None
        }
    };
    record.dedupe_key = dedupe.clone();
    if matches!(verifier.scheme, verify::Scheme::Token) {
        request.query = redact_token(&request.query);
    }
    let window = ingress.dedupe_window.as_millis() as u64;
    let inserted = ingress
        .storage
        .insert_event(NewEvent {
            record,
            request,
            dedupe: dedupe.map(|key| (key, window)),
        })
        .instrument(tracing::debug_span!("store"))
        .await
        .map_err(ApiError::not_stored)?;

    let (outcome, body) = match inserted {
        // The store queued it for its connector.
        Inserted::Accepted { id: event_id } => (
            WebhookOutcome::Accepted,
            json!({ "id": event_id, "status": "accepted" }),
        ),
        Inserted::Duplicate { first_id, .. } => (
            WebhookOutcome::Duplicate,
            json!({ "id": first_id, "status": "duplicate" }),
        ),
    };
    Ok((outcome, (StatusCode::OK, Json(body)).into_response()))
}

/// Replace the value of every `token` parameter in a query string. Keys are compared
/// decoded, as the verifier reads them, so `%74oken=…` is masked too.
fn redact_token(query: &str) -> String {
    query
        .split('&')
        .map(|pair| {
            let is_token = url::form_urlencoded::parse(pair.as_bytes())
                .next()
                .is_some_and(|(key, _)| key == "token");
            if is_token {
                "token=****".to_string()
            } else {
                pair.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::redact_token;

    #[test]
    fn token_is_redacted_from_queries() {
        assert_eq!(redact_token("token=s3cret"), "token=****");
        assert_eq!(redact_token("a=1&token=s3cret&b=2"), "a=1&token=****&b=2");
        assert_eq!(redact_token("a=1"), "a=1");
        assert_eq!(redact_token("%74oken=s3cret"), "token=****");
        assert_eq!(redact_token("t%6Fken=s3cret&x=1"), "token=****&x=1");
        assert_eq!(redact_token("tok%65n"), "token=****");
        assert_eq!(redact_token(""), "");
    }
}
