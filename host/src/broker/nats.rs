//! NATS: JetStream with its `PubAck` when a stream takes the subject, core NATS with a
//! flush when none does (the module docs say what each confirms).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::jetstream::context::{GetStreamByNameErrorKind, PublishErrorKind};
use async_nats::jetstream::{self, ErrorCode};
use async_nats::{ConnectErrorKind, ConnectOptions, HeaderMap, ServerAddr};
use bytes::Bytes;

use super::target::NatsTarget;
use super::{BACKSTOP, BrokerError, Message, Pool, Published};

/// A client and its JetStream context (both cheap clones of one connection).
#[derive(Clone)]
pub(super) struct Conn {
    client: async_nats::Client,
    jetstream: jetstream::Context,
    /// Subject → the stream known to take it. Only streams are remembered: a subject no
    /// stream took is asked about again on each publish, so a stream created later takes
    /// the next message; a remembered stream that stops answering is forgotten.
    streams: Arc<Mutex<HashMap<String, String>>>,
}

impl Conn {
    /// The stream that takes `subject`, if any. Asked of JetStream's API (stream names
    /// filtered by subject) rather than learnt from a publish's "no responders": a
    /// JetStream publish is a request, and a core subscriber on the subject would receive
    /// it and leave it unanswered.
    async fn stream_for(
        &self,
        to: &NatsTarget,
        subject: &str,
    ) -> Result<Option<String>, BrokerError> {
        if !self.client.server_info().jetstream {
            return Ok(None);
        }
        if let Some(stream) = self.known().get(subject) {
            return Ok(Some(stream.clone()));
        }
        match self.jetstream.stream_by_subject(subject).await {
            Ok(stream) => {
                self.known().insert(subject.to_owned(), stream.clone());
                Ok(Some(stream))
            }
            Err(err) if err.kind() == GetStreamByNameErrorKind::NotFound => Ok(None),
            // JetStream is on in the server but not for this account: no API answers.
            Err(err) if no_responders(&err) => Ok(None),
            Err(err) => Err(BrokerError::Unavailable(format!(
                "{}: asking JetStream which stream takes {subject}: {err}",
                to.display()
            ))),
        }
    }

    fn forget_stream(&self, subject: &str) {
        self.known().remove(subject);
    }

    fn known(&self) -> std::sync::MutexGuard<'_, HashMap<String, String>> {
        self.streams.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The JetStream errors that a re-send cannot fix.
const PERMANENT_JETSTREAM_CODES: [ErrorCode; 2] = [
    ErrorCode::STREAM_MESSAGE_EXCEEDS_MAXIMUM,
    ErrorCode::STREAM_NOT_MATCH,
];

pub(super) async fn publish(
    pool: &Pool<Conn>,
    to: &NatsTarget,
    message: &Message<'_>,
    timeout: Duration,
) -> Result<Published, BrokerError> {
    let key = to.key();
    let conn = pool
        .get(
            &key,
            // The client reconnects by itself, but one that lost its server would only
            // buffer until the timeout: a fresh connect says "unreachable" at once.
            |conn| conn.client.connection_state() == async_nats::connection::State::Connected,
            || connect(to, timeout),
        )
        .await?;

    let mut headers = HeaderMap::new();
    for (name, value) in message.headers {
        headers.append(name.as_str(), value.as_str());
    }
    if let Some(id) = message.idempotency_key() {
        headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
    }
    let body = Bytes::copy_from_slice(message.body);
    let subject = to.subject.as_str();

    if let Some(stream) = conn.stream_for(to, subject).await? {
        let ack = conn
            .jetstream
            .publish_with_headers(subject.to_owned(), headers, body)
            .await
            .map_err(|err| jetstream_error(to, err))?;
        return match ack.await {
            Ok(ack) => {
                let detail = format!("jetstream stream {} seq {}", ack.stream, ack.sequence);
                Ok(if ack.duplicate {
                    Published {
                        detail: format!("duplicate of {detail}"),
                        duplicate: true,
                    }
                } else {
                    Published {
                        detail,
                        duplicate: false,
                    }
                })
            }
            // "No responders": the stream is gone, or not answering. Ask again next time;
            // this message is retried, never sent past the stream.
            Err(err) if err.kind() == PublishErrorKind::StreamNotFound => {
                conn.forget_stream(subject);
                Err(BrokerError::Unavailable(format!(
                    "{}: stream {stream} took subject {subject} and did not answer",
                    to.display()
                )))
            }
            Err(err) => Err(jetstream_error(to, err)),
        };
    }

    conn.client
        .publish_with_headers(subject.to_owned(), headers, body)
        .await
        .map_err(|err| match err.kind() {
            async_nats::client::PublishErrorKind::MaxPayloadExceeded => {
                BrokerError::Refused(format!(
                    "{}: the message ({} bytes) is over the server's max_payload ({} bytes)",
                    to.display(),
                    message.body.len(),
                    conn.client.server_info().max_payload
                ))
            }
            _ => BrokerError::Unavailable(format!("{}: publish: {err}", to.display())),
        })?;
    conn.client
        .flush()
        .await
        .map_err(|err| BrokerError::Unavailable(format!("{}: flush: {err}", to.display())))?;
    Ok(Published {
        detail: format!(
            "core nats subject {subject} (no stream takes it: received by the server, \
             not stored)"
        ),
        duplicate: false,
    })
}

async fn connect(to: &NatsTarget, timeout: Duration) -> Result<Conn, BrokerError> {
    let address: ServerAddr = format!("nats://{}", to.server.address())
        .parse()
        .map_err(|err| BrokerError::InvalidUrl(format!("{}: {err}", to.display())))?;
    let mut options = ConnectOptions::new()
        .name("switchyard broker publisher")
        .connection_timeout(timeout)
        .request_timeout(Some(timeout.max(BACKSTOP)));
    if let Some(user) = &to.server.user {
        options =
            options.user_and_password(user.clone(), to.server.password.clone().unwrap_or_default());
    }
    let client = options
        .connect(address)
        .await
        .map_err(|err| match err.kind() {
            ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
                BrokerError::Refused(format!(
                    "{}: the server refused the credentials: {err}",
                    to.display()
                ))
            }
            _ => BrokerError::Unavailable(format!("{} is unreachable: {err}", to.display())),
        })?;
    let mut jetstream = jetstream::new(client.clone());
    jetstream.set_timeout(timeout.max(BACKSTOP));
    Ok(Conn {
        client,
        jetstream,
        streams: Arc::default(),
    })
}

fn jetstream_error(to: &NatsTarget, err: jetstream::context::PublishError) -> BrokerError {
    let api_code = std::error::Error::source(&err)
        .and_then(|source| source.downcast_ref::<jetstream::Error>())
        .map(|error| error.error_code());
    let text = format!(
        "{}: jetstream publish to {}: {err}",
        to.display(),
        to.subject
    );
    match api_code {
        Some(code) if PERMANENT_JETSTREAM_CODES.contains(&code) => BrokerError::Refused(text),
        _ => BrokerError::Unavailable(text),
    }
}

/// Whether a JetStream API error comes from a request nobody answered.
fn no_responders(err: &(dyn std::error::Error + 'static)) -> bool {
    let mut cause = Some(err);
    while let Some(err) = cause {
        if err
            .downcast_ref::<jetstream::context::RequestError>()
            .is_some_and(|err| err.kind() == jetstream::context::RequestErrorKind::NoResponders)
        {
            return true;
        }
        cause = err.source();
    }
    false
}
