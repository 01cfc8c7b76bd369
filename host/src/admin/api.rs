//! What the admin API answers, as types: each handler returns one of these, and the OpenAPI
//! document (`GET /v1/openapi.json`, [`ApiDoc`]) is generated from them and from the
//! handlers' `#[utoipa::path]` annotations, so the document cannot drift from the code.

use serde::Serialize;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use crate::deliver::DeliveryError;
use crate::store::tally::Counts;
use crate::store::{DeliveryRecord, EventRecord, Status, StoredRequest};

/// The body of every error: `{"error":{"code","message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable, for programs: `unauthorized`, `not_found`, `invalid_query`, …
    pub code: String,
    /// For people; never holds a secret.
    pub message: String,
}

/// `GET /v1/destinations`: every `[[destination]]`, by id, as this host sees it (its
/// breaker and limits are per host).
#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationList {
    pub data: Vec<crate::destination::DestinationState>,
}

/// `GET /v1/health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the host answers.
    pub status: String,
}

/// `GET /v1/session`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Session {
    /// `admin` (every route) or `read` (`GET`s only: `server.admin_read_token`).
    pub access: super::Access,
}

/// Events by status.
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct StatusCounts {
    pub pending: u64,
    pub retrying: u64,
    pub succeeded: u64,
    pub dead: u64,
    pub duplicate: u64,
    pub rejected: u64,
}

impl From<&Counts> for StatusCounts {
    fn from(counts: &Counts) -> Self {
        let n = |status: Status| counts[status.index()];
        StatusCounts {
            pending: n(Status::Pending),
            retrying: n(Status::Retrying),
            succeeded: n(Status::Succeeded),
            dead: n(Status::Dead),
            duplicate: n(Status::Duplicate),
            rejected: n(Status::Rejected),
        }
    }
}

/// A connector's events by status, over the retention window and the last 24 hours (by
/// the hour they were received).
#[derive(Debug, Default, Serialize, ToSchema)]
pub struct ConnectorCounts {
    pub retention: StatusCounts,
    pub last_24h: StatusCounts,
}

/// One configured connector.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorView {
    pub id: String,
    pub enabled: bool,
    pub paused: bool,
    /// The `.wasm` file the config names.
    pub plugin: String,
    /// From the loaded build's manifest (null when nothing is loaded).
    pub name: Option<String>,
    pub version: Option<String>,
    /// `sha256:…` of the loaded build.
    pub digest: Option<String>,
    /// The signature scheme in force (null when the config cannot give one).
    pub scheme: Option<String>,
    /// When the build was loaded (unix ms).
    pub loaded_at: Option<u64>,
    /// The build's size in bytes.
    pub size: Option<u64>,
    /// Why the connector's newest build (or its config) was refused, if it was.
    pub last_error: Option<String>,
    /// Null when the store cannot count without reading the log.
    pub counts: Option<ConnectorCounts>,
    /// The latest failed delivery try on this host since it started.
    pub last_delivery_error: Option<DeliveryError>,
}

/// `GET /v1/connectors`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectorList {
    pub data: Vec<ConnectorView>,
    /// Why the newest config reload failed (the previous config keeps running).
    pub config_error: Option<String>,
    /// Reloads since start.
    pub reloads: u64,
}

/// `GET /v1/events`: newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventPage {
    pub data: Vec<EventRecord>,
    /// Pass as `cursor` for the next page; null at the end.
    pub next_cursor: Option<String>,
}

/// `GET /v1/events/{id}`: the record, the request as received and every delivery.
#[derive(Debug, Serialize, ToSchema)]
pub struct EventDetail {
    #[serde(flatten)]
    pub record: EventRecord,
    /// Null when its request is gone (an event stored before a damaged disk was repaired).
    pub request: Option<StoredRequest>,
    pub deliveries: Vec<DeliveryRecord>,
}

/// `POST /v1/events/{id}/replay`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Replaying {
    pub id: String,
    pub status: Status,
}

/// `POST /v1/replay`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Replayed {
    /// Events sent back to their connector (`succeeded` and `dead` ones matching).
    pub replayed: usize,
    /// Events of the log read (all the matches; replayed or not).
    pub read: usize,
    /// With `limit` in the request: where the next call goes on from (null at the end).
    pub next_cursor: Option<String>,
}

/// `POST /v1/plugins/{name}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct Pushed {
    pub name: String,
    pub digest: String,
}

/// The bearer token scheme every route but `/v1/health` and `/v1/openapi.json` needs.
struct BearerToken;

impl Modify for BearerToken {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "admin_token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "server.admin_token, or server.admin_read_token for GETs",
                    ))
                    .build(),
            ),
        );
    }
}

/// The document's frame; the paths come from the router ([`super::documented`]).
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Switchyard admin API",
        description = "The event log, replays and connectors of a Switchyard host. Every answer \
                       carries X-RateLimit-Limit, X-RateLimit-Remaining and X-RateLimit-Reset; \
                       GETs carry an ETag and answer If-None-Match with 304.",
    ),
    modifiers(&BearerToken),
    components(schemas(ErrorBody, ErrorDetail))
)]
pub struct ApiDoc;
