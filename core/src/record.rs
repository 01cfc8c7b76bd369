//! The records every engine stores, and nothing else: what an event, its request, its
//! attempts and its deliveries are. Engines and the pipeline share them; they know no
//! engine.

use std::fmt;

use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// Raw bytes that serialize as a string when they are UTF-8 and as `{"base64": …}` when not,
/// so the event log shows bodies readably without ever altering them.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Body(Vec<u8>);

impl Body {
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
    pub fn to_vec(&self) -> Vec<u8> {
        self.0.clone()
    }
    pub fn into_vec(self) -> Vec<u8> {
        self.0
    }
    pub fn len(&self) -> usize {
        self.0.len()
    }
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl From<Vec<u8>> for Body {
    fn from(bytes: Vec<u8>) -> Self {
        Body(bytes)
    }
}

impl From<&[u8]> for Body {
    fn from(bytes: &[u8]) -> Self {
        Body(bytes.to_vec())
    }
}

impl fmt::Debug for Body {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Body({} bytes)", self.0.len())
    }
}

#[derive(Serialize, Deserialize)]
#[serde(untagged)]
enum BodyRepr {
    Text(String),
    Base64 { base64: String },
}

impl Serialize for Body {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match std::str::from_utf8(&self.0) {
            Ok(text) => BodyRepr::Text(text.to_string()),
            Err(_) => BodyRepr::Base64 {
                base64: base64::engine::general_purpose::STANDARD.encode(&self.0),
            },
        }
        .serialize(s)
    }
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match BodyRepr::deserialize(d)? {
            BodyRepr::Text(text) => Ok(Body(text.into_bytes())),
            BodyRepr::Base64 { base64 } => base64::engine::general_purpose::STANDARD
                .decode(base64)
                .map(Body)
                .map_err(serde::de::Error::custom),
        }
    }
}

/// A body in the OpenAPI document: a string, or `{"base64": …}` (see [`Body`]).
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for Body {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Type};
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .description(Some("The bytes, when they are UTF-8.")),
            )
            .item(
                ObjectBuilder::new()
                    .property("base64", ObjectBuilder::new().schema_type(Type::String))
                    .required("base64")
                    .description(Some("The bytes in base64, when they are not UTF-8.")),
            )
            .into()
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for Body {}

/// Header names whose values are credentials: stored as `****`.
pub fn is_secret_header(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "authorization" | "proxy-authorization" | "cookie" | "xf-api-key" | "x-api-key"
    )
}

/// Replace the values of credential headers with `****` (they keep their names, so the log
/// shows that one was sent).
pub fn mask_secret_headers(headers: &mut [(String, String)]) {
    for (name, value) in headers {
        if is_secret_header(name) {
            *value = "****".into();
        }
    }
}

/// The request as received, kept for the event log and handed to the connector.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct StoredRequest {
    pub method: String,
    pub path: String,
    pub query: String,
    /// Names lowercase, in the order received.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<String>>))]
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// Where an event stands. `pending`/`retrying` are live; the rest are final.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Stored; waiting for the connector or for its deliveries.
    Pending,
    /// A connector call or a delivery failed and is scheduled again.
    Retrying,
    /// The connector ran and every delivery got a 2xx.
    Succeeded,
    /// Gave up: rejected by the connector, a permanent downstream error, or attempts used up.
    Dead,
    /// A repeat of an earlier event (same dedupe key within the window); not dispatched.
    Duplicate,
    /// Failed signature verification; never dispatched.
    Rejected,
}

impl Status {
    /// Every status, in the order [`Status::index`] numbers them.
    pub const ALL: [Status; 6] = [
        Status::Pending,
        Status::Retrying,
        Status::Succeeded,
        Status::Dead,
        Status::Duplicate,
        Status::Rejected,
    ];

    /// Its place in [`Status::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pending => "pending",
            Status::Retrying => "retrying",
            Status::Succeeded => "succeeded",
            Status::Dead => "dead",
            Status::Duplicate => "duplicate",
            Status::Rejected => "rejected",
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, Status::Pending | Status::Retrying)
    }
}

/// The outcome of signature verification, kept with the event.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Verification {
    pub scheme: String,
    pub verified: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// How one call of a connector's `handle` ended (or why it was not made): the
/// [`Attempt::outcome`] stored, and the `outcome` label of
/// `switchyard_connector_calls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallOutcome {
    /// It returned deliveries (none is fine).
    Deliveries,
    /// It asked to be called again later.
    Retry,
    /// It refused the event for good.
    Reject,
    /// It trapped (a panic, an out-of-bounds access, its memory cap).
    Trap,
    /// It ran past its deadline.
    Deadline,
    /// It could not run: no plugin loaded, or it did not instantiate.
    Unavailable,
    /// Not called: the event's stored request is gone.
    Lost,
    /// It returned more than `[plugins]` allows.
    Oversized,
}

impl CallOutcome {
    /// Every outcome, in declaration order (`ALL[o as usize] == o`).
    pub const ALL: [CallOutcome; 8] = [
        CallOutcome::Deliveries,
        CallOutcome::Retry,
        CallOutcome::Reject,
        CallOutcome::Trap,
        CallOutcome::Deadline,
        CallOutcome::Unavailable,
        CallOutcome::Lost,
        CallOutcome::Oversized,
    ];

    /// The name stored in [`Attempt::outcome`] and used as the metric's label.
    pub const fn as_str(self) -> &'static str {
        match self {
            CallOutcome::Deliveries => "deliveries",
            CallOutcome::Retry => "retry",
            CallOutcome::Reject => "reject",
            CallOutcome::Trap => "trap",
            CallOutcome::Deadline => "deadline",
            CallOutcome::Unavailable => "unavailable",
            CallOutcome::Lost => "lost",
            CallOutcome::Oversized => "oversized",
        }
    }
}

impl std::fmt::Display for CallOutcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One call of the connector's `handle` for an event.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Attempt {
    pub number: u32,
    pub at: u64,
    pub duration_ms: u64,
    pub plugin_digest: String,
    pub plugin_version: String,
    /// A [`CallOutcome`]'s name: `deliveries`, `retry`, `reject`, `trap`, `deadline`,
    /// `unavailable`, `lost` (its request is gone), `oversized` (it returned more than
    /// `[plugins]` allows). Stored as text, so a record written by a later version with an
    /// outcome this one does not know still reads.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    pub deliveries: usize,
    /// The linear memory the call's instance held at its end, in bytes (its peak: wasm
    /// memory never shrinks): what to hold against `plugins.max_memory_bytes`. 0 when the
    /// call never ran, and in records written before it was kept.
    #[serde(default)]
    pub memory_bytes: u64,
    #[serde(default)]
    pub logs: Vec<LogLine>,
    #[serde(default)]
    pub fetches: Vec<FetchRecord>,
}

/// The event log's record of one inbound request (without its body; see [`StoredRequest`]).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EventRecord {
    pub id: String,
    pub connector: String,
    pub received_at: u64,
    pub updated_at: u64,
    pub status: Status,
    pub verification: Verification,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dedupe_key: Option<String>,
    /// For a `duplicate`: the event it repeats.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate_of: Option<String>,
    /// When the connector is called next (a scheduled retry of `handle`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<u64>,
    #[serde(default)]
    pub attempts: Vec<Attempt>,
    /// Index of the first delivery of the latest connector run (set by a replay): the new
    /// run numbers its deliveries from here, and the status follows them, while the old
    /// ones stay in the log.
    #[serde(default)]
    pub deliveries_from: u32,
    /// The latest run was a replay that asked for new `Idempotency-Key`s (a deliberate new
    /// effect). Otherwise each run's deliveries carry `{id}-{n}`, `n` counted from the
    /// run's first delivery: a replay sends the keys the first run sent, so a receiver
    /// that dedupes on them does not apply an effect twice (as Stripe keeps an event's id
    /// when it is resent).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub new_keys: bool,
    /// The W3C `traceparent` of the span that received it, when traces are exported: the
    /// connector attempts and deliveries, which run later (after a restart, too), join its
    /// trace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<String>,
    /// Why it is dead, when it is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl EventRecord {
    /// A just-received event, `pending`, verified with `scheme`.
    pub fn received(id: String, connector: String, at: u64, scheme: &str) -> Self {
        EventRecord {
            id,
            connector,
            received_at: at,
            updated_at: at,
            status: Status::Pending,
            verification: Verification {
                scheme: scheme.to_string(),
                verified: true,
                error: None,
            },
            dedupe_key: None,
            duplicate_of: None,
            next_attempt_at: None,
            attempts: Vec::new(),
            deliveries_from: 0,
            new_keys: false,
            trace: None,
            error: None,
        }
    }
}

/// State of one outbound delivery.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Retrying,
    Succeeded,
    Dead,
}

impl DeliveryStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Pending => "pending",
            DeliveryStatus::Retrying => "retrying",
            DeliveryStatus::Succeeded => "succeeded",
            DeliveryStatus::Dead => "dead",
        }
    }

    pub fn is_final(self) -> bool {
        matches!(self, DeliveryStatus::Succeeded | DeliveryStatus::Dead)
    }
}

/// One try of one delivery.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub number: u32,
    pub at: u64,
    pub duration_ms: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response: Option<OutboundResponse>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// What a broker confirmed, for a queue destination (`jetstream stream ORDERS seq 42`,
    /// `duplicate of redis stream x id …`); HTTP tries have their `response` instead.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// An outbox row: a request the connector asked for, and every try of it.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct DeliveryRecord {
    pub event_id: String,
    pub index: u32,
    /// Sent as `Idempotency-Key` (and `webhook-id` when signed); the same on every try.
    pub idempotency_key: String,
    pub request: OutboundRequest,
    pub status: DeliveryStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<u64>,
    #[serde(default)]
    pub attempts: Vec<DeliveryAttempt>,
}

/// A request as a connector describes it (a delivery, or an `http.fetch`).
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutboundRequest {
    pub method: String,
    pub url: String,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<String>>))]
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// What came back.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutboundResponse {
    pub status: u16,
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Vec<String>>))]
    pub headers: Vec<(String, String)>,
    pub body: Body,
}

/// One `http.fetch` call as it appears in the event log.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct FetchRecord {
    pub at: u64,
    pub duration_ms: u64,
    pub request: OutboundRequest,
    pub status: Option<u16>,
    pub error: Option<String>,
}

/// One line a connector logged during a call.
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct LogLine {
    pub at: u64,
    pub level: String,
    pub message: String,
}
