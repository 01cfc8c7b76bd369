//! Deliver: perform the connector's outbound requests from the outbox, each with its own
//! retries, a stable `Idempotency-Key`, and Standard Webhooks signing when the connector
//! has an `outbound_secret`.
//!
//! Each delivery is retried on its own: a failing downstream neither re-runs the connector
//! nor re-sends deliveries that already succeeded. The store's outbox (shared by every
//! node) hands out each delivery when it is due, to one worker at a time; every try is
//! stored before the next is scheduled, so a restart resumes them with their schedule.

pub mod policy;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use rand::Rng as _;

use tracing::Instrument as _;

use crate::broker::{BrokerError, Brokers, Published};
use crate::destination::{
    self, Change, Destination, Destinations, Gate, MAX_WAIT, Outcome, Ticket,
};
use crate::metrics::Metrics;
use crate::outbound::{self, OutboundError, OutboundResponse};
use crate::plugin::{Connector, Registry};
use crate::store::{
    DeliveryAttempt, DeliveryRecord, DeliveryStatus, Lease, Status, Storage, StoreError, lifecycle,
};
use crate::tasks::Background;
use crate::verify::{self, Scheme};
use policy::{Verdict, backoff, classify_status};

/// Response bodies kept in the log are cut to this size.
const LOGGED_RESPONSE_BYTES: usize = 64 * 1024;
/// How long the worker waits on the outbox before it looks again.
const POLL: Duration = Duration::from_secs(1);
/// How long a delivery whose connector is gone waits before it is looked at again.
const NO_CONNECTOR: Duration = Duration::from_secs(30);
/// How long a delivery to a `destination:ID` that no `[[destination]]` has waits before it
/// is looked at again (a config reload may add it).
const NO_DESTINATION: Duration = Duration::from_secs(5);

/// What the delivery stage works with: where the rows are, the connectors (their grants,
/// retry policy and signing secret), the outbound client, and where it reports.
#[derive(Clone)]
pub struct Deliverer {
    pub storage: Arc<dyn Storage>,
    pub connectors: Arc<Registry>,
    /// Outbound HTTP, one connection pool with the connectors' `http.fetch`.
    pub http: reqwest::Client,
    /// Bounds the tries in flight: first tries and the outbox's alike.
    pub slots: Arc<tokio::sync::Semaphore>,
    pub metrics: Arc<Metrics>,
    /// Each connector's latest failed try on this host, for `GET /v1/connectors`.
    pub last_errors: Arc<LastErrors>,
    /// The `[[destination]]`s: where `destination:ID` goes, and each one's limits.
    pub destinations: Arc<Destinations>,
    pub background: Background,
}

/// Each connector's latest failed delivery try, by connector id.
pub type LastErrors = Mutex<HashMap<String, DeliveryError>>;

/// A delivery try that failed, as `GET /v1/connectors` shows it.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct DeliveryError {
    pub at: u64,
    pub event_id: String,
    pub delivery: u32,
    /// The downstream's status, or why there was none.
    pub error: String,
}

/// Start taking due deliveries from the outbox, as many in flight as `slots` allows.
pub fn start(deliverer: Deliverer) {
    let background = deliverer.background.clone();
    background.spawn(async move {
        loop {
            let Ok(slot) = deliverer.slots.clone().acquire_owned().await else {
                return;
            };
            let (lease, row) = match deliverer.storage.next_delivery(POLL).await {
                Ok(Some(next)) => next,
                Ok(None) => continue,
                Err(err) => {
                    tracing::error!("taking the next delivery failed: {err}");
                    tokio::time::sleep(POLL).await;
                    continue;
                }
            };
            let one = deliverer.clone();
            deliverer.background.spawn(async move {
                if let Err(err) = try_once(&one, lease, row, slot).await {
                    tracing::error!("delivering failed: {err}");
                }
            });
        }
    });
}

/// One try of one delivery: send it, store the outcome (and when it is due again), and let
/// its event's status follow.
#[tracing::instrument(level = "debug", skip_all, fields(event_id = %row.event_id, delivery = row.index))]
async fn try_once(
    deliverer: &Deliverer,
    lease: Lease,
    mut row: DeliveryRecord,
    slot: tokio::sync::OwnedSemaphorePermit,
) -> Result<(), StoreError> {
    let storage = deliverer.storage.as_ref();
    let event = storage.event(&row.event_id).await?;
    let connector = match &event {
        Some(event) => deliverer.connectors.get(&event.connector),
        // Its event is gone (retention): the delivery goes with it.
        None => None,
    };
    let trace = event.and_then(|e| e.trace);
    let Some(connector) = connector else {
        tracing::warn!(event_id = %row.event_id, "delivery kept: its connector is not configured");
        row.next_attempt_at = Some(crate::time::now_ms() + NO_CONNECTOR.as_millis() as u64);
        return storage.finish_delivery(lease, &row).await;
    };
    let target = match target(deliverer, &connector, &row) {
        Target::Wait { until, why } => {
            return put_back(storage, lease, &mut row, until, &why).await;
        }
        Target::Go(go) => go,
        Target::Limited(destination) => {
            // Its turn may come soon: wait for it without holding a host-wide slot, so
            // deliveries to other destinations go on meanwhile.
            drop(slot);
            match destination.admit().await {
                Gate::Go(ticket) => Go::Destination(ticket),
                Gate::Wait { until, why } => {
                    destination.deferred();
                    return put_back(storage, lease, &mut row, until, why).await;
                }
            }
        }
    };
    attempt(deliverer, &connector, &mut row, trace.as_deref(), target).await;
    storage.finish_delivery(lease, &row).await?;
    settle_event(storage, &row).await
}

/// Store `row` unchanged but due at `until`: it waits, and no try is counted.
async fn put_back(
    storage: &dyn Storage,
    lease: Lease,
    row: &mut DeliveryRecord,
    until: u64,
    why: &str,
) -> Result<(), StoreError> {
    tracing::debug!(event_id = %row.event_id, delivery = row.index, "delivery waits: {why}");
    row.next_attempt_at = Some(until);
    storage.finish_delivery(lease, row).await
}

/// Where a try goes, and whether it may go now.
enum Target {
    Go(Go),
    /// A destination whose limits may let it through after a short wait.
    Limited(Arc<Destination>),
    /// Not now: due again at `until`.
    Wait {
        until: u64,
        why: String,
    },
}

/// A try that goes now.
enum Go {
    /// To the URL the connector gave.
    Direct,
    /// To a `[[destination]]`, let through by its limits and breaker.
    Destination(Ticket),
    /// Refused before sending (a destination the connector is not granted): dead.
    Refused(String),
}

/// Resolve `row`'s URL (`destination:ID` or the connector's own) and ask the destination's
/// limits, without waiting.
fn target(deliverer: &Deliverer, connector: &Connector, row: &DeliveryRecord) -> Target {
    let Some(id) = destination::named(&row.request.url) else {
        return Target::Go(Go::Direct);
    };
    let Some(destination) = deliverer.destinations.get(id) else {
        // The operator may add it (a config reload): the delivery waits, it is not lost.
        let error = format!("no [[destination]] with id `{id}`: the delivery waits for one");
        tracing::warn!(connector = %connector.config.id, event_id = %row.event_id, "{error}");
        note_error(
            deliverer,
            connector,
            row,
            crate::time::now_ms(),
            error.clone(),
        );
        return Target::Wait {
            until: crate::time::now_ms() + NO_DESTINATION.as_millis() as u64,
            why: error,
        };
    };
    if !connector
        .grants
        .allowed_hosts
        .grants_destination(id, &destination.config.url)
    {
        return Target::Go(Go::Refused(format!(
            "destination `{id}` is not in this connector's allowed_hosts (add \"destination:{id}\")"
        )));
    }
    match destination.try_admit() {
        Gate::Go(ticket) => Target::Go(Go::Destination(ticket)),
        Gate::Wait { until, .. }
            if until <= crate::time::now_ms() + MAX_WAIT.as_millis() as u64 =>
        {
            Target::Limited(destination)
        }
        Gate::Wait { until, why } => {
            destination.deferred();
            Target::Wait {
                until,
                why: format!("destination `{id}`: {why}"),
            }
        }
    }
}

/// The first try of each delivery a connector run returned, made at once by the task that
/// ran it, before the rows are stored: the event's record, its rows and their first outcome
/// are then stored in one [`DispatchQueue::finish_dispatch`], and only rows that need
/// another try go through the outbox. This saves, per delivered event, the outbox round
/// trip (queue, read back, write the try, read and write the event again): half of the
/// store's work after ingress (BENCHMARKS.md, issue 21).
///
/// Each first try holds a delivery slot, like a try from the outbox; a row that finds none
/// free is left `pending` and queued as before. A crash before the rows are stored
/// re-dispatches the event, and its new run sends the same deliveries again with the same
/// `Idempotency-Key`s: at least once, as when a crash loses a stored row's outcome.
///
/// Returns the event's status once the tries are made ([`lifecycle::settled`]), and the
/// error a dead one records.
///
/// [`DispatchQueue::finish_dispatch`]: crate::store::DispatchQueue::finish_dispatch
pub async fn first_tries(
    deliverer: &Deliverer,
    connector: &Connector,
    trace: Option<&str>,
    rows: &mut [DeliveryRecord],
) -> Option<(Status, Option<String>)> {
    let tries = rows.iter_mut().filter_map(|row| {
        let slot = deliverer.slots.clone().try_acquire_owned().ok()?;
        // A delivery its destination holds back waits in the outbox: the dispatch task
        // never waits for one destination.
        let go = match target(deliverer, connector, row) {
            Target::Go(go) => go,
            Target::Limited(destination) => {
                destination.deferred();
                row.next_attempt_at = Some(crate::time::now_ms());
                return None;
            }
            Target::Wait { until, .. } => {
                row.next_attempt_at = Some(until);
                return None;
            }
        };
        let span =
            tracing::debug_span!("first_try", event_id = %row.event_id, delivery = row.index);
        Some(
            async move {
                attempt(deliverer, connector, row, trace, go).await;
                drop(slot);
            }
            .instrument(span),
        )
    });
    futures::future::join_all(tries).await;
    let statuses: Vec<DeliveryStatus> = rows.iter().map(|row| row.status).collect();
    let status = lifecycle::settled(&statuses)?;
    let error = (status == Status::Dead)
        .then(|| rows.iter().find(|row| row.status == DeliveryStatus::Dead))
        .flatten()
        .map(dead_error);
    Some((status, error))
}

/// Send `row` once, and record the try in it: its outcome, its new status and when it is
/// due again.
async fn attempt(
    deliverer: &Deliverer,
    connector: &Connector,
    row: &mut DeliveryRecord,
    trace: Option<&str>,
    go: Go,
) {
    let destination = match &go {
        Go::Destination(ticket) => Some(ticket.destination().clone()),
        _ => None,
    };
    let policy = match &destination {
        Some(d) => d.config.retry.over(connector.retry()),
        None => connector.retry().clone(),
    };
    let number = row.attempts.len() as u32 + 1;
    let mut extra = extra_headers(connector, destination.as_deref(), row);
    let span = tracing::debug_span!("delivery", attempt = number, status = tracing::field::Empty);
    crate::telemetry::set_parent(&span, trace);
    // The receiver's work joins the webhook's trace, as a child of this try.
    if let Some(traceparent) = span.in_scope(crate::telemetry::traceparent) {
        extra.push(("traceparent".into(), traceparent));
    }
    let at = crate::time::now_ms();
    let tried = match &go {
        Go::Refused(why) => {
            Tried::from_http(Err(OutboundError::Denied(why.clone())), Duration::ZERO)
        }
        Go::Destination(ticket) if Brokers::handles(&ticket.destination().config.url) => {
            let started = std::time::Instant::now();
            let headers: Vec<(String, String)> =
                outbound::merged_headers(&row.request.headers, &extra)
                    .cloned()
                    .collect();
            let published = deliverer
                .destinations
                .brokers
                .publish(
                    &ticket.destination().config.url,
                    &headers,
                    row.request.body.as_bytes(),
                    policy.timeout,
                )
                .instrument(span.clone())
                .await;
            Tried::from_broker(published, started.elapsed())
        }
        Go::Direct | Go::Destination(_) => {
            // The connector's own URL and grants, or the destination's.
            let (client, allowed, url) = match &go {
                Go::Destination(ticket) => {
                    let d = ticket.destination();
                    (
                        &deliverer.destinations.http,
                        &d.allowed,
                        d.config.url.as_str(),
                    )
                }
                _ => (
                    &deliverer.http,
                    &connector.grants.allowed_hosts,
                    row.request.url.as_str(),
                ),
            };
            let (result, took) =
                outbound::send_to(client, allowed, url, &row.request, &extra, policy.timeout)
                    .instrument(span.clone())
                    .await;
            Tried::from_http(result, took)
        }
    };
    if let Some(response) = &tried.response {
        span.record("status", response.status);
    }
    row.status = match tried.verdict {
        Verdict::Succeeded => DeliveryStatus::Succeeded,
        Verdict::Dead => DeliveryStatus::Dead,
        Verdict::Retry { .. } if number >= policy.max_attempts => DeliveryStatus::Dead,
        Verdict::Retry { .. } => DeliveryStatus::Retrying,
    };
    deliverer
        .metrics
        .delivery_attempt(&connector.config.id, row.status, tried.took);
    let error =
        (row.status != DeliveryStatus::Succeeded).then(|| match (&tried.response, &tried.error) {
            (Some(response), _) => format!("HTTP {}", response.status),
            (None, error) => crate::secret::redact(
                error.as_deref().unwrap_or_default(),
                &connector.grants.secrets,
            )
            .into_owned(),
        });
    if let Some(error) = &error {
        note_error(deliverer, connector, row, at, error.clone());
    }
    if let Go::Destination(ticket) = go {
        let outcome = match tried.verdict {
            Verdict::Succeeded => Outcome::Succeeded,
            Verdict::Dead => Outcome::Refused,
            Verdict::Retry { .. } => Outcome::Failed,
        };
        let destination = ticket.destination().clone();
        if let Some(change) = destination.record(ticket, outcome, error) {
            deliverer.destination_changed(&destination, change);
        }
    }
    row.next_attempt_at = match tried.verdict {
        Verdict::Retry { not_before } if row.status == DeliveryStatus::Retrying => {
            let delay = backoff(&policy, number, not_before, rand::rng().random());
            // Rounded up: `now_ms` truncates, and a `Retry-After: 1` must never be
            // retried after 999.6 ms.
            Some(crate::time::now_ms() + delay.as_millis() as u64 + 1)
        }
        _ => None,
    };
    row.attempts.push(DeliveryAttempt {
        number,
        at,
        duration_ms: tried.took.as_millis() as u64,
        response: tried.response,
        error: tried.error,
        detail: tried.detail,
    });
}

/// One try as sent, over HTTP or to a broker: what the delivery's record keeps of it, and
/// what it means for the delivery.
struct Tried {
    verdict: Verdict,
    /// The answer, its body cut to [`LOGGED_RESPONSE_BYTES`].
    response: Option<OutboundResponse>,
    /// Why there was no answer, or the broker's refusal.
    error: Option<String>,
    /// What a broker confirmed.
    detail: Option<String>,
    took: Duration,
}

impl Tried {
    fn from_http(result: Result<OutboundResponse, OutboundError>, took: Duration) -> Tried {
        let verdict = match &result {
            Ok(response) => classify_status(
                response.status,
                header(response, "retry-after"),
                SystemTime::now(),
            ),
            Err(OutboundError::Denied(_)) => Verdict::Dead,
            Err(_) => Verdict::Retry { not_before: None },
        };
        Tried {
            verdict,
            response: result.as_ref().ok().map(trimmed),
            error: result.err().map(|e| e.to_string()),
            detail: None,
            took,
        }
    }

    /// A confirmation succeeds, a refusal is dead, anything else is retried.
    fn from_broker(published: Result<Published, BrokerError>, took: Duration) -> Tried {
        let verdict = match &published {
            Ok(_) => Verdict::Succeeded,
            Err(err) if err.is_permanent() => Verdict::Dead,
            Err(_) => Verdict::Retry { not_before: None },
        };
        let (detail, error) = match published {
            Ok(published) => (Some(published.detail), None),
            Err(err) => (None, Some(err.to_string())),
        };
        Tried {
            verdict,
            response: None,
            error,
            detail,
            took,
        }
    }
}

/// Keep `error` as the connector's latest failed try, for `GET /v1/connectors`.
fn note_error(
    deliverer: &Deliverer,
    connector: &Connector,
    row: &DeliveryRecord,
    at: u64,
    error: String,
) {
    deliverer
        .last_errors
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(
            connector.config.id.clone(),
            DeliveryError {
                at,
                event_id: row.event_id.clone(),
                delivery: row.index,
                error,
            },
        );
}

impl Deliverer {
    /// A destination's breaker opened, closed or disabled it: say so, and on a disable
    /// store it (so it holds across restarts) and send the alert.
    fn destination_changed(&self, destination: &Arc<Destination>, change: Change) {
        let id = &destination.config.id;
        let last_error = destination
            .state()
            .last_error
            .map(|e| e.error)
            .unwrap_or_default();
        match change {
            Change::Opened => {
                tracing::warn!(destination = %id, "circuit opened: deliveries wait ({last_error})")
            }
            Change::Closed => tracing::info!(destination = %id, "circuit closed: deliveries flow"),
            Change::Disabled => {
                tracing::error!(
                    destination = %id,
                    "destination disabled: its circuit stayed open for disable_after; its \
                     deliveries are kept until an operator enables it ({last_error})"
                );
                self.metrics.destination_disabled(id);
                let (storage, destinations) = (self.storage.clone(), self.destinations.clone());
                let destination = destination.clone();
                self.background.spawn(async move {
                    destination::remember(storage.as_ref(), &destination).await;
                    destination::alert(
                        &destinations.http,
                        &destinations.alerts(),
                        &destination,
                        "destination.disabled",
                    )
                    .await;
                });
            }
        }
    }
}

/// The error a dead event records for its first dead delivery.
fn dead_error(row: &DeliveryRecord) -> String {
    format!(
        "delivery {} to {} failed permanently",
        row.index, row.request.url
    )
}

/// `Idempotency-Key`, a destination's own headers, and Standard Webhooks headers when the
/// destination (or else the connector) signs deliveries.
fn extra_headers(
    connector: &Connector,
    destination: Option<&Destination>,
    row: &DeliveryRecord,
) -> Vec<(String, String)> {
    let mut headers = vec![("Idempotency-Key".to_string(), row.idempotency_key.clone())];
    let mut secret = connector.config.outbound_secret.as_ref();
    if let Some(destination) = destination {
        headers.extend(
            destination
                .config
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), value.expose().to_owned())),
        );
        secret = destination.config.outbound_secret.as_ref().or(secret);
    }
    if let Some(secret) = secret {
        match verify::sign(
            &Scheme::StandardWebhooks,
            secret,
            row.request.body.as_bytes(),
            crate::time::now_s(),
            &row.idempotency_key,
        ) {
            Ok(signed) => headers.extend(signed),
            Err(err) => tracing::error!(
                event_id = %row.event_id,
                delivery = row.index,
                "signing the delivery failed: {err}"
            ),
        }
    }
    headers
}

fn header<'a>(response: &'a OutboundResponse, name: &str) -> Option<&'a str> {
    response
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn trimmed(response: &OutboundResponse) -> OutboundResponse {
    let mut response = response.clone();
    if response.body.len() > LOGGED_RESPONSE_BYTES {
        let mut bytes = response.body.into_vec();
        bytes.truncate(LOGGED_RESPONSE_BYTES);
        response.body = bytes.into();
    }
    response
}

/// Let the event's status follow the deliveries of its latest connector run
/// ([`lifecycle::settled`]). When `row` is the run's only delivery (the common case), the
/// others are not read.
///
/// Two deliveries of one event can finish at once, each computing the status from what it
/// read: after its write, each reads again and writes again if the status it wrote is no
/// longer what the deliveries say, so the last one to finish always leaves it right.
async fn settle_event(storage: &dyn Storage, row: &DeliveryRecord) -> Result<(), StoreError> {
    let Some(record) = storage.event(&row.event_id).await? else {
        return Ok(());
    };
    let run_from = record.deliveries_from;
    let only_this = row.index == run_from
        && record
            .attempts
            .last()
            .is_some_and(|attempt| attempt.deliveries == 1);
    let statuses = |rows: Vec<DeliveryRecord>| -> Vec<DeliveryStatus> {
        rows.iter()
            .filter(|r| r.index >= run_from)
            .map(|r| r.status)
            .collect()
    };
    let mut current = if only_this {
        vec![row.status]
    } else {
        statuses(storage.deliveries(&row.event_id).await?)
    };
    loop {
        let Some(status) = lifecycle::settled(&current) else {
            return Ok(());
        };
        storage
            .update_event(&row.event_id, &mut |record| {
                let error = (status == Status::Dead).then(|| dead_error(row));
                lifecycle::deliveries_settled(record, status, error);
            })
            .await?;
        if only_this {
            return Ok(());
        }
        let again = statuses(storage.deliveries(&row.event_id).await?);
        if lifecycle::settled(&again) == Some(status) {
            return Ok(());
        }
        current = again;
    }
}
