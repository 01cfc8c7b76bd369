//! Dispatch: a pool of workers hands stored events to their connector's `handle`.
//!
//! An event stays in the store's dispatch queue until `handle` has returned and its
//! deliveries are stored (one atomic write), so a crash at any point means the event is
//! handed over again after restart, never lost.

use std::sync::Arc;
use std::time::Duration;

use rand::Rng as _;

use crate::app::App;
use crate::deliver;
use crate::deliver::policy::backoff;
use crate::outbound::OutboundRequest;
use crate::plugin::bindings::{Failure, Webhook};
use crate::plugin::{CallError, Connector};
use crate::store::{
    Attempt, DeliveryRecord, DeliveryStatus, EventRecord, Status, StoreError, StoredRequest,
};

/// Start the workers and re-queue what was pending before the last stop.
pub fn start(app: &Arc<App>) -> Result<(), StoreError> {
    let workers = app.config.server.worker_count();
    for _ in 0..workers {
        let app2 = app.clone();
        app.spawn(async move {
            while let Ok(id) = app2.dispatch_rx.recv().await {
                process(&app2, &id).await;
            }
        });
    }
    let pending = app.storage.pending_events()?;
    if !pending.is_empty() {
        tracing::info!(count = pending.len(), "resuming pending events");
    }
    for id in pending {
        let _ = app.dispatch_tx.try_send(id);
    }
    Ok(())
}

/// Queue `id` for dispatch after `delay`.
fn requeue_after(app: &Arc<App>, id: String, delay: Duration) {
    let tx = app.dispatch_tx.clone();
    app.spawn(async move {
        tokio::time::sleep(delay).await;
        let _ = tx.send(id).await;
    });
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

/// One dispatch of one event.
#[tracing::instrument(level = "debug", skip_all, fields(event_id = %id))]
async fn process(app: &Arc<App>, id: &str) {
    if !app
        .in_flight
        .lock()
        .expect("in_flight lock")
        .insert(id.to_string())
    {
        return;
    }
    let result = try_process(app, id).await;
    app.in_flight.lock().expect("in_flight lock").remove(id);
    if let Err(err) = result {
        // Storage trouble: the event is still queued in the store; try again later.
        tracing::error!(event_id = %id, "dispatch failed: {err}");
        requeue_after(app, id.to_string(), Duration::from_secs(5));
    }
}

async fn try_process(app: &Arc<App>, id: &str) -> Result<(), StoreError> {
    let Some(mut record) = app.storage.event(id)? else {
        return Ok(());
    };
    if record.status.is_final() {
        return app.storage.finish_dispatch(&record, &[], false);
    }
    let now = crate::time::now_ms();
    if let Some(next) = record.next_attempt_at
        && next > now
    {
        requeue_after(app, record.id.clone(), Duration::from_millis(next - now));
        return Ok(());
    }
    let Some(connector) = app.connectors.get(&record.connector) else {
        // Removed or disabled since it was accepted: keep it until it comes back.
        tracing::warn!(event_id = %id, connector = %record.connector, "connector not configured; event kept pending");
        return Ok(());
    };
    if connector.config.paused {
        return Ok(());
    }
    let number = record.attempts.len() as u32 + 1;
    let Some(request) = app.storage.request(id)? else {
        // Not there intact: a crash tore it before it was acknowledged, or retention
        // removed it. Trying again would never find it.
        let message = "its stored request is gone (torn by a crash before it was \
                       acknowledged, or removed by retention)";
        tracing::error!(event_id = %id, "{message}");
        let attempt = no_call(app, &record, number, now, "lost", message.into());
        record.attempts.push(attempt);
        record.status = Status::Dead;
        record.next_attempt_at = None;
        record.error = Some(message.into());
        return app.storage.finish_dispatch(&record, &[], false);
    };
    let plugin = match &connector.plugin {
        Some(plugin) => plugin.clone(),
        None => {
            let err = connector
                .unavailable()
                .unwrap_or("no plugin loaded")
                .to_string();
            let attempt = no_call(app, &record, number, now, "unavailable", err);
            return schedule_retry(app, &connector, record, attempt);
        }
    };

    let hook = webhook(&record, &request, number);
    let outcome = app
        .runtime
        .handle(&plugin, connector.grants.clone(), &hook)
        .await;
    let label = match &outcome.result {
        Ok(Ok(_)) => "deliveries",
        Ok(Err(Failure::Reject(_))) => "reject",
        Ok(Err(Failure::Retry(_))) => "retry",
        Err(CallError::Deadline(_)) => "deadline",
        Err(CallError::Trap(_)) => "trap",
        Err(CallError::Instantiate(_)) => "unavailable",
    };
    app.metrics
        .connector_call(&record.connector, label, outcome.duration);
    let mut attempt = Attempt {
        number,
        at: now,
        duration_ms: outcome.duration.as_millis() as u64,
        plugin_digest: plugin.digest.clone(),
        plugin_version: plugin.manifest.version.clone(),
        outcome: label.into(),
        message: None,
        deliveries: 0,
        logs: outcome.logs,
        fetches: outcome.fetches,
    };
    match outcome.result {
        Ok(Ok(deliveries)) => {
            attempt.deliveries = deliveries.len();
            // A replayed event already has deliveries: the replay set where the new run's
            // numbering starts. A run repeated after a crash reuses the same numbers, and
            // so the same idempotency keys.
            let base = record.deliveries_from as usize;
            let rows: Vec<DeliveryRecord> = deliveries
                .into_iter()
                .enumerate()
                .map(|(i, d)| (base + i, d))
                .map(|(index, d)| DeliveryRecord {
                    event_id: record.id.clone(),
                    index: index as u32,
                    idempotency_key: format!("{}-{index}", record.id),
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
            record.attempts.push(attempt);
            record.next_attempt_at = None;
            record.status = if rows.is_empty() {
                Status::Succeeded
            } else {
                Status::Pending
            };
            app.storage.finish_dispatch(&record, &rows, false)?;
            for row in rows {
                deliver::spawn(app, &connector, row);
            }
            Ok(())
        }
        Ok(Err(Failure::Reject(message))) => {
            attempt.message = Some(message.clone());
            record.attempts.push(attempt);
            record.status = Status::Dead;
            record.next_attempt_at = None;
            record.error = Some(format!("rejected by the connector: {message}"));
            app.storage.finish_dispatch(&record, &[], false)
        }
        Ok(Err(Failure::Retry(message))) => {
            attempt.message = Some(message);
            schedule_retry(app, &connector, record, attempt)
        }
        Err(err) => {
            attempt.message = Some(err.to_string());
            schedule_retry(app, &connector, record, attempt)
        }
    }
}

/// An attempt that never reached the connector (`outcome` says why), counted as a call.
fn no_call(
    app: &App,
    record: &EventRecord,
    number: u32,
    at: u64,
    outcome: &str,
    message: String,
) -> Attempt {
    app.metrics
        .connector_call(&record.connector, outcome, Duration::ZERO);
    Attempt {
        number,
        at,
        duration_ms: 0,
        plugin_digest: String::new(),
        plugin_version: String::new(),
        outcome: outcome.into(),
        message: Some(message),
        deliveries: 0,
        logs: Vec::new(),
        fetches: Vec::new(),
    }
}

/// The connector call failed transiently: schedule another, or give up.
fn schedule_retry(
    app: &Arc<App>,
    connector: &Connector,
    mut record: EventRecord,
    attempt: Attempt,
) -> Result<(), StoreError> {
    let number = attempt.number;
    let message = attempt.message.clone().unwrap_or_default();
    tracing::warn!(event_id = %record.id, attempt = number, outcome = %attempt.outcome, "connector call failed: {message}");
    record.attempts.push(attempt);
    let policy = connector.retry();
    if number >= policy.max_attempts {
        record.status = Status::Dead;
        record.next_attempt_at = None;
        record.error = Some(format!("gave up after {number} attempts: {message}"));
        return app.storage.finish_dispatch(&record, &[], false);
    }
    let delay = backoff(policy, number, None, rand::rng().random());
    record.status = Status::Retrying;
    record.next_attempt_at = Some(crate::time::now_ms() + delay.as_millis() as u64);
    app.storage.finish_dispatch(&record, &[], true)?;
    requeue_after(app, record.id.clone(), delay);
    Ok(())
}
