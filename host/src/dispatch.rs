//! Dispatch: every enabled connector that is not paused has a dispatcher, which takes its
//! events from the store's dispatch queue (one per connector, shared by every node of a
//! cluster) and calls the connector's `handle`, at most `server.workers` calls at once
//! across connectors, and at most the connector's own share of them
//! ([`ConnectorConfig::concurrency`]): a connector that is always slow or spinning holds
//! its share, and the others' events keep flowing through the rest.
//!
//! The call's slots are given back as soon as `handle` returns; the same task then makes
//! the first try of each delivery it returned ([`crate::deliver::first_tries`], holding
//! delivery slots), and stores the record, the deliveries and those tries together. An
//! event stays queued until then ([`DispatchQueue::finish_dispatch`], one step), so a crash
//! at any point means it is handed out again, never lost (and its deliveries sent again
//! under the same `Idempotency-Key`s). Pausing a connector stops its dispatcher; its events
//! wait in the queue until it resumes.
//!
//! [`DispatchQueue::finish_dispatch`]: crate::store::DispatchQueue::finish_dispatch
//! [`ConnectorConfig::concurrency`]: crate::config::ConnectorConfig::concurrency

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use tracing::Instrument as _;

use crate::deliver::Deliverer;
use crate::deliver::policy::backoff;
use crate::metrics::Metrics;
use crate::outbound::OutboundRequest;
use crate::plugin::bindings::{Failure, Webhook};
use crate::plugin::{CallError, Connector, ConnectorState, Registry, Runtime};
use crate::store::{
    Attempt, CallOutcome, DeliveryRecord, DeliveryStatus, EventRecord, Lease, Storage, StoreError,
    StoredRequest, lifecycle,
};
use crate::tasks::Background;

/// How long a dispatcher waits on its queue before it looks again (and sees a stop).
const POLL: Duration = Duration::from_secs(1);
/// How long an event whose connector is gone (removed from the config, or disabled since it
/// was accepted) waits before it is looked at again; it is kept until the connector is back.
const NO_CONNECTOR: Duration = Duration::from_secs(30);

/// What the dispatch stage works with: the queues and records, the connectors and the
/// engine that runs them, the bound on calls, and the delivery stage for first tries.
#[derive(Clone)]
pub struct Dispatcher {
    pub storage: Arc<dyn Storage>,
    pub connectors: Arc<Registry>,
    pub runtime: Arc<Runtime>,
    pub metrics: Arc<Metrics>,
    /// Bounds concurrent connector calls across connectors (`server.workers`).
    pub call_slots: Arc<Semaphore>,
    /// `server.workers` as resolved: a connector's default share derives from it.
    pub workers: usize,
    /// Told when the connectors changed (a reload, a pause or resume).
    pub changed: Arc<tokio::sync::Notify>,
    pub deliverer: Deliverer,
    pub background: Background,
}

/// Start the dispatchers, and keep them following the connectors (reloads, pauses).
pub fn start(dispatch: Dispatcher) {
    let background = dispatch.background.clone();
    background.spawn(async move {
        let mut running: HashMap<String, CancellationToken> = HashMap::new();
        loop {
            follow(&dispatch, &mut running);
            dispatch.changed.notified().await;
        }
    });
}

/// One dispatcher for each connector that is enabled and not paused, no other.
fn follow(dispatch: &Dispatcher, running: &mut HashMap<String, CancellationToken>) {
    let wanted: Vec<String> = dispatch
        .connectors
        .all()
        .into_iter()
        .filter(|c| !c.paused)
        .map(|c| c.config.id.clone())
        .collect();
    running.retain(|id, stop| {
        let keep = wanted.contains(id);
        if !keep {
            stop.cancel();
        }
        keep
    });
    for id in wanted {
        if running.contains_key(&id) {
            continue;
        }
        let stop = dispatch.background.child_token();
        running.insert(id.clone(), stop.clone());
        let one = dispatch.clone();
        dispatch
            .background
            .spawn(async move { dispatcher(one, id, stop).await });
    }
}

/// Take the events of `connector` one at a time and hand each to a call, until `stop`.
async fn dispatcher(dispatch: Dispatcher, connector: String, stop: CancellationToken) {
    // The connector's own share of the workers, remade when a reload changes its size
    // (calls still running give their slot back to the old one).
    let mut own: Option<(usize, Arc<Semaphore>)> = None;
    loop {
        let share = dispatch
            .connectors
            .get(&connector)
            .map_or(1, |c| c.config.concurrency(dispatch.workers));
        let own_slots = match &own {
            Some((size, slots)) if *size == share => slots.clone(),
            _ => own
                .insert((share, Arc::new(Semaphore::new(share))))
                .1
                .clone(),
        };
        // Taken before the next event, so a connector at its share holds no lease.
        let own_slot = tokio::select! {
            _ = stop.cancelled() => return,
            slot = own_slots.acquire_owned() => slot,
        };
        let Ok(own_slot) = own_slot else { return };
        let next = tokio::select! {
            _ = stop.cancelled() => return,
            next = dispatch.storage.next_dispatch(&connector, POLL) => next,
        };
        let lease = match next {
            Ok(Some(lease)) => lease,
            Ok(None) => continue,
            Err(err) => {
                tracing::error!(%connector, "taking the next event failed: {err}");
                tokio::time::sleep(POLL).await;
                continue;
            }
        };
        let slot = tokio::select! {
            // The lease, dropped unfinished, is handed out again.
            _ = stop.cancelled() => return,
            slot = dispatch.call_slots.clone().acquire_owned() => slot,
        };
        let Ok(slot) = slot else { return };
        let slots = CallSlots {
            _worker: slot,
            _own: own_slot,
        };
        let one = dispatch.clone();
        dispatch
            .background
            .spawn(async move { process(&one, lease, slots).await });
    }
}

/// Build the connector's view of a stored request.
pub fn webhook(record: &EventRecord, request: &StoredRequest, attempt: u32) -> Webhook {
    Webhook {
        id: record.id.clone(),
        connector: record.connector.clone(),
        method: request.method.clone(),
        path: request.path.clone(),
        query: request.query.clone(),
        headers: request.headers.clone(),
        body: request.body.to_vec(),
        received_at: record.received_at,
        attempt,
    }
}

/// The worker slot and the connector's own slot a call holds; given back as soon as the
/// connector has returned (the first tries of its deliveries hold delivery slots instead).
struct CallSlots {
    _worker: tokio::sync::OwnedSemaphorePermit,
    _own: tokio::sync::OwnedSemaphorePermit,
}

/// One dispatch of one event.
#[tracing::instrument(level = "debug", skip_all, fields(event_id = %lease.id))]
async fn process(dispatch: &Dispatcher, lease: Lease, slots: CallSlots) {
    let id = lease.id.clone();
    if let Err(err) = try_process(dispatch, lease, slots).await {
        // Still queued in the store, which hands it out again in a while.
        tracing::error!(event_id = %id, "dispatch failed: {err}");
    }
}

async fn try_process(
    dispatch: &Dispatcher,
    lease: Lease,
    slots: CallSlots,
) -> Result<(), StoreError> {
    let storage = dispatch.storage.as_ref();
    let id = lease.id.clone();
    let Some(mut record) = storage.event(&id).await? else {
        // Gone (retention, or taken back because its sync failed): nothing to do.
        return storage.forget_dispatch(lease).await;
    };
    if record.status.is_final() {
        return storage.finish_dispatch(lease, &record, &[], None).await;
    }
    let now = crate::time::now_ms();
    if let Some(next) = record.next_attempt_at
        && next > now
    {
        let wait = Duration::from_millis(next - now);
        return storage.release_dispatch(lease, wait).await;
    }
    let Some(connector) = dispatch.connectors.get(&record.connector) else {
        // Removed or disabled since it was accepted: keep it until it comes back.
        tracing::warn!(event_id = %id, connector = %record.connector, "connector not configured; event kept pending");
        return storage.release_dispatch(lease, NO_CONNECTOR).await;
    };
    if connector.paused {
        // Paused since its dispatcher took it: it waits for the resume.
        return storage.release_dispatch(lease, Duration::ZERO).await;
    }
    let number = record.attempts.len() as u32 + 1;
    let Some(request) = storage.request(&id).await? else {
        // Not there intact: a crash tore it before it was acknowledged, or retention
        // removed it. Trying again would never find it.
        let message = "its stored request is gone (torn by a crash before it was \
                       acknowledged, or removed by retention)";
        tracing::error!(event_id = %id, "{message}");
        let attempt = no_call(
            &dispatch.metrics,
            &record,
            number,
            now,
            CallOutcome::Lost,
            message.into(),
        );
        lifecycle::dead(&mut record, attempt, message.into());
        return storage.finish_dispatch(lease, &record, &[], None).await;
    };
    // Accepted events go to the loaded version even when new requests cannot be verified.
    let plugin = match &connector.state {
        ConnectorState::Ready { plugin, .. } | ConnectorState::Unverifiable { plugin, .. } => {
            plugin.clone()
        }
        ConnectorState::NotLoaded { reason, .. } => {
            let err = reason.clone();
            let attempt = no_call(
                &dispatch.metrics,
                &record,
                number,
                now,
                CallOutcome::Unavailable,
                err,
            );
            return schedule_retry(storage, lease, &connector, record, attempt).await;
        }
    };

    let hook = webhook(&record, &request, number);
    let span =
        tracing::debug_span!("connector_call", connector = %record.connector, attempt = number);
    crate::telemetry::set_parent(&span, record.trace.as_deref());
    let outcome = dispatch
        .runtime
        .handle(&plugin, connector.grants.clone(), &hook)
        .instrument(span)
        .await;
    drop(slots);
    let label = match &outcome.result {
        Ok(Ok(_)) => CallOutcome::Deliveries,
        Ok(Err(Failure::Reject(_))) => CallOutcome::Reject,
        Ok(Err(Failure::Retry(_))) => CallOutcome::Retry,
        Err(CallError::Deadline(_)) => CallOutcome::Deadline,
        Err(CallError::Trap(_)) => CallOutcome::Trap,
        Err(CallError::Instantiate(_)) => CallOutcome::Unavailable,
        Err(CallError::Oversized(_)) => CallOutcome::Oversized,
    };
    dispatch
        .metrics
        .connector_call(&record.connector, label, outcome.duration);
    let mut attempt = Attempt {
        number,
        at: now,
        duration_ms: outcome.duration.as_millis() as u64,
        plugin_digest: plugin.digest.clone(),
        plugin_version: plugin.manifest.version.clone(),
        outcome: label.as_str().into(),
        message: None,
        deliveries: 0,
        memory_bytes: outcome.memory_bytes as u64,
        logs: outcome.logs,
        fetches: outcome.fetches,
    };
    match outcome.result {
        Ok(Ok(deliveries)) => {
            attempt.deliveries = deliveries.len();
            // A replayed event already has deliveries: the replay set where the new run's
            // numbering starts, and its keys are the first run's unless it asked for new
            // ones. A run repeated after a crash reuses the same numbers and keys.
            let base = record.deliveries_from as usize;
            let mut rows: Vec<DeliveryRecord> = deliveries
                .into_iter()
                .enumerate()
                .map(|(i, d)| (base + i, d))
                .map(|(index, d)| DeliveryRecord {
                    event_id: record.id.clone(),
                    index: index as u32,
                    idempotency_key: lifecycle::idempotency_key(&record, index as u32),
                    request: OutboundRequest {
                        method: d.method,
                        url: d.url,
                        headers: d.headers,
                        body: d.body.into(),
                    },
                    status: DeliveryStatus::Pending,
                    next_attempt_at: None,
                    attempts: Vec::new(),
                })
                .collect();
            lifecycle::handled(&mut record, attempt);
            let trace = record.trace.clone();
            if let Some((status, error)) = crate::deliver::first_tries(
                &dispatch.deliverer,
                &connector,
                trace.as_deref(),
                &mut rows,
            )
            .await
            {
                lifecycle::deliveries_settled(&mut record, status, error);
            }
            // The store queues the deliveries that need another try for the outbox.
            storage.finish_dispatch(lease, &record, &rows, None).await
        }
        Ok(Err(Failure::Reject(message))) => {
            attempt.message = Some(message.clone());
            let error = format!("rejected by the connector: {message}");
            lifecycle::dead(&mut record, attempt, error);
            storage.finish_dispatch(lease, &record, &[], None).await
        }
        Ok(Err(Failure::Retry(message))) => {
            attempt.message = Some(message);
            schedule_retry(storage, lease, &connector, record, attempt).await
        }
        // The same event would make the same result: dead at once, like a reject.
        Err(err @ CallError::Oversized(_)) => {
            let message = err.to_string();
            attempt.message = Some(message.clone());
            lifecycle::dead(&mut record, attempt, message);
            storage.finish_dispatch(lease, &record, &[], None).await
        }
        Err(err) => {
            attempt.message = Some(err.to_string());
            schedule_retry(storage, lease, &connector, record, attempt).await
        }
    }
}

/// An attempt that never reached the connector (`outcome` says why), counted as a call.
fn no_call(
    metrics: &Metrics,
    record: &EventRecord,
    number: u32,
    at: u64,
    outcome: CallOutcome,
    message: String,
) -> Attempt {
    metrics.connector_call(&record.connector, outcome, Duration::ZERO);
    Attempt {
        number,
        at,
        duration_ms: 0,
        plugin_digest: String::new(),
        plugin_version: String::new(),
        outcome: outcome.as_str().into(),
        message: Some(message),
        deliveries: 0,
        memory_bytes: 0,
        logs: Vec::new(),
        fetches: Vec::new(),
    }
}

/// The connector call failed transiently: schedule another, or give up.
async fn schedule_retry(
    storage: &dyn Storage,
    lease: Lease,
    connector: &Connector,
    mut record: EventRecord,
    attempt: Attempt,
) -> Result<(), StoreError> {
    let number = attempt.number;
    let message = attempt.message.clone().unwrap_or_default();
    tracing::warn!(event_id = %record.id, attempt = number, outcome = %attempt.outcome, "connector call failed: {message}");
    let policy = connector.retry();
    if number >= policy.max_attempts {
        let error = format!("gave up after {number} attempts: {message}");
        lifecycle::dead(&mut record, attempt, error);
        return storage.finish_dispatch(lease, &record, &[], None).await;
    }
    let delay = backoff(policy, number, None, rand::rng().random());
    let again_at = crate::time::now_ms() + delay.as_millis() as u64;
    lifecycle::retry_at(&mut record, attempt, again_at);
    storage
        .finish_dispatch(lease, &record, &[], Some(again_at))
        .await
}
