//! The one error type at the HTTP edge: clean JSON for the client, causes logged here.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// An HTTP error answered as `{"error":{"code","message"}}`.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// A webhook could not be stored (ingress only: the sender retries it). The cause is
    /// logged, not sent; the admin API answers storage failures by their kind
    /// (`From<StoreError>`).
    pub fn not_stored(cause: impl std::fmt::Display) -> Self {
        tracing::error!("answering 503: {cause}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the event could not be stored; retry later",
        )
    }
}

/// A storage failure behind an admin answer, by kind: one that may pass is a 503 (retry),
/// one that will not (a record that does not read) a 500. The cause is logged, not sent.
impl From<crate::store::StoreError> for ApiError {
    fn from(err: crate::store::StoreError) -> Self {
        tracing::error!("admin API: {err}");
        if err.is_transient() {
            Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "storage is unavailable; retry later",
            )
        } else {
            Self::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage_error",
                "could not read the event log",
            )
        }
    }
}

/// An operator's command refused or failed: an unknown connector is a 404, a config that
/// does not load a 422, a store that fails what any storage failure is.
impl From<crate::app::ControlError> for ApiError {
    fn from(err: crate::app::ControlError) -> Self {
        use crate::app::ControlError;
        match err {
            ControlError::NoConnector(_) | ControlError::NoDestination(_) => {
                Self::not_found(err.to_string())
            }
            ControlError::InvalidConfig(message) => {
                Self::new(StatusCode::UNPROCESSABLE_ENTITY, "invalid_config", message)
            }
            ControlError::Store(err) => err.into(),
        }
    }
}

/// A query string that does not parse (`?limit=many`, an unknown filter): 400, in the
/// API's shape rather than axum's plain text.
impl From<axum::extract::rejection::QueryRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::QueryRejection) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_query",
            rejection.body_text(),
        )
    }
}

/// A JSON body that does not parse, or is not JSON: axum's status, the API's shape.
impl From<axum::extract::rejection::JsonRejection> for ApiError {
    fn from(rejection: axum::extract::rejection::JsonRejection) -> Self {
        Self::new(rejection.status(), "invalid_body", rejection.body_text())
    }
}

/// A route that does not exist: 404 in the API's shape.
pub async fn no_route(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("no route {}", uri.path()))
}

/// A route that exists, asked with another method: 405 in the API's shape.
pub async fn wrong_method(method: axum::http::Method, uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        format!("{method} is not allowed on {}", uri.path()),
    )
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": self.code, "message": self.message } });
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("5"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::ControlError;
    use crate::store::StoreError;

    /// Each failure is answered with its own status and code, never a 404 for a store that
    /// failed (issue 20.3).
    #[test]
    fn each_failure_has_its_status() {
        let cases: [(ApiError, StatusCode, &str); 6] = [
            (
                ControlError::NoConnector("stripe".into()).into(),
                StatusCode::NOT_FOUND,
                "not_found",
            ),
            (
                ControlError::InvalidConfig("switchyard.toml: bad".into()).into(),
                StatusCode::UNPROCESSABLE_ENTITY,
                "invalid_config",
            ),
            (
                ControlError::Store(StoreError::Unavailable("disk full".into())).into(),
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            ),
            (
                ControlError::Store(StoreError::Stopped).into(),
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            ),
            (
                StoreError::Corrupt("torn".into()).into(),
                StatusCode::INTERNAL_SERVER_ERROR,
                "storage_error",
            ),
            (
                ApiError::not_stored("disk full"),
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
            ),
        ];
        for (error, status, code) in cases {
            assert_eq!(
                (error.status, error.code),
                (status, code),
                "{}",
                error.message
            );
            // The cause of a storage failure is logged, never sent.
            assert!(!error.message.contains("disk full"), "{}", error.message);
        }
        let refused: ApiError = ControlError::NoConnector("stripe".into()).into();
        assert_eq!(refused.message, "no enabled connector `stripe`");
        let not_stored = ApiError::not_stored("x");
        assert_eq!(
            not_stored.message,
            "the event could not be stored; retry later"
        );
        let admin: ApiError = StoreError::Unavailable("x".into()).into();
        assert_eq!(admin.message, "storage is unavailable; retry later");
    }
}
