//! `http.fetch`: allow-listed outbound HTTP during a call, recorded with the attempt.

use super::{CallState, MAX_FETCH_BODY_BYTES, MAX_FETCHES};
use crate::outbound::{self, OutboundError, OutboundRequest};
use crate::plugin::bindings::current::switchyard::connector::http::{
    Error, Host, Request, Response,
};
use crate::store::Body;

pub use crate::outbound::AllowedHosts;

pub use crate::store::FetchRecord;

impl Host for CallState {
    async fn fetch(&mut self, request: Request) -> Result<Response, Error> {
        if self.fetches.len() >= MAX_FETCHES {
            return Err(Error::Denied(format!(
                "more than {MAX_FETCHES} fetches in one call"
            )));
        }
        if request.body.len() > MAX_FETCH_BODY_BYTES {
            return Err(Error::Denied(format!(
                "request body larger than {MAX_FETCH_BODY_BYTES} bytes"
            )));
        }
        let request = OutboundRequest {
            method: request.method,
            url: request.url,
            headers: request.headers,
            body: Body::from(request.body),
        };
        let grants = self.grants.clone();
        let at = crate::time::now_ms();
        let (result, took) = outbound::send(
            &grants.http,
            &grants.allowed_hosts,
            &request,
            &[],
            grants.fetch_timeout,
        )
        .await;
        // Authorization headers are secrets: keep their name, not their value, in the log;
        // and the values of secret settings wherever the connector put them.
        let mut logged = request;
        crate::store::mask_secret_headers(&mut logged.headers);
        redact_request(&mut logged, &grants.secrets);
        let error = result
            .as_ref()
            .err()
            .map(|e| crate::secret::redact(&e.to_string(), &grants.secrets).into_owned());
        self.fetches.push(FetchRecord {
            at,
            duration_ms: took.as_millis() as u64,
            request: logged,
            status: result.as_ref().ok().map(|r| r.status),
            error,
        });
        match result {
            Ok(response) => Ok(Response {
                status: response.status,
                headers: response.headers,
                body: response.body.to_vec(),
            }),
            Err(OutboundError::Denied(why)) => Err(Error::Denied(why)),
            Err(OutboundError::Timeout(_)) => Err(Error::Timeout),
            Err(OutboundError::Transport(text)) => Err(Error::Transport(text)),
        }
    }
}

/// `request` with the values of `secrets` masked in its URL and headers (the event log's
/// copy; the request sent keeps them).
pub fn redact_request(request: &mut OutboundRequest, secrets: &[crate::secret::Secret]) {
    if secrets.is_empty() {
        return;
    }
    request.url = crate::secret::redact(&request.url, secrets).into_owned();
    for (_, value) in &mut request.headers {
        *value = crate::secret::redact(value, secrets).into_owned();
    }
}
