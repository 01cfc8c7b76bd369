//! Deliver: perform the connector's outbound requests from the outbox, each with its own
//! retries, a stable `Idempotency-Key`, and Standard Webhooks signing when the connector
//! has an `outbound_secret`.
//!
//! Each delivery is retried on its own: a failing downstream neither re-runs the connector
//! nor re-sends deliveries that already succeeded. Every try is written to the outbox row
//! before the next is scheduled, and open rows are resumed after a restart.

pub mod policy;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rand::Rng as _;

use crate::app::App;
use crate::outbound::{self, OutboundError, OutboundResponse};
use crate::plugin::Connector;
use crate::store::{DeliveryAttempt, DeliveryRecord, DeliveryStatus, Status, StoreError};
use crate::verify::{self, Scheme};
use policy::{Verdict, backoff, classify_status};

/// Response bodies kept in the log are cut to this size.
const LOGGED_RESPONSE_BYTES: usize = 64 * 1024;

/// Start delivering `row` in the background.
pub fn spawn(app: &Arc<App>, connector: &Arc<Connector>, row: DeliveryRecord) {
    let app2 = app.clone();
    let connector = connector.clone();
    app.spawn(async move { run(app2, connector, row).await });
}

/// Resume every open delivery after a restart.
pub fn resume(app: &Arc<App>) -> Result<(), StoreError> {
    let open = app.storage.open_deliveries()?;
    if !open.is_empty() {
        tracing::info!(count = open.len(), "resuming open deliveries");
    }
    for row in open {
        let Some(event) = app.storage.event(&row.event_id)? else {
            continue;
        };
        match app.connectors.get(&event.connector) {
            Some(connector) => spawn(app, &connector, row),
            None => tracing::warn!(
                connector = %event.connector,
                "delivery kept: its connector is not configured"
            ),
        }
    }
    Ok(())
}

#[tracing::instrument(level = "debug", skip_all, fields(event_id = %row.event_id, delivery = row.index))]
async fn run(app: Arc<App>, connector: Arc<Connector>, mut row: DeliveryRecord) {
    let policy = connector.retry().clone();
    loop {
        if let Some(at) = row.next_attempt_at {
            let now = crate::time::now_ms();
            if at > now {
                tokio::time::sleep(Duration::from_millis(at - now)).await;
            }
        }
        let Ok(_slot) = app.delivery_slots.clone().acquire_owned().await else {
            return;
        };
        let number = row.attempts.len() as u32 + 1;
        let extra = extra_headers(&connector, &row);
        let at = crate::time::now_ms();
        let (result, took) = outbound::send(
            &app.http,
            &connector.grants.allowed_hosts,
            &row.request,
            &extra,
            policy.timeout,
        )
        .await;
        let verdict = match &result {
            Ok(response) => classify_status(
                response.status,
                header(response, "retry-after"),
                SystemTime::now(),
            ),
            Err(OutboundError::Denied(_)) => Verdict::Dead,
            Err(_) => Verdict::Retry { not_before: None },
        };
        row.attempts.push(DeliveryAttempt {
            number,
            at,
            duration_ms: took.as_millis() as u64,
            response: result.as_ref().ok().map(trimmed),
            error: result.as_ref().err().map(|e| e.to_string()),
        });
        row.status = match verdict {
            Verdict::Succeeded => DeliveryStatus::Succeeded,
            Verdict::Dead => DeliveryStatus::Dead,
            Verdict::Retry { .. } if number >= policy.max_attempts => DeliveryStatus::Dead,
            Verdict::Retry { .. } => DeliveryStatus::Retrying,
        };
        app.metrics
            .delivery_attempt(&connector.config.id, row.status.as_str(), took);
        row.next_attempt_at = match verdict {
            Verdict::Retry { not_before } if row.status == DeliveryStatus::Retrying => {
                let delay = backoff(&policy, number, not_before, rand::rng().random());
                // Rounded up: `now_ms` truncates, and a `Retry-After: 1` must never be
                // retried after 999.6 ms.
                Some(crate::time::now_ms() + delay.as_millis() as u64 + 1)
            }
            _ => None,
        };
        if let Err(err) = app.storage.put_delivery(&row) {
            tracing::error!(event_id = %row.event_id, delivery = row.index, "recording the delivery attempt failed: {err}");
        }
        if let Err(err) = settle_event(&app, &row) {
            tracing::error!(event_id = %row.event_id, delivery = row.index, "updating the event status failed: {err}");
        }
        if row.status.is_final() {
            return;
        }
    }
}

/// `Idempotency-Key`, plus Standard Webhooks headers when the connector signs deliveries.
fn extra_headers(connector: &Connector, row: &DeliveryRecord) -> Vec<(String, String)> {
    let mut headers = vec![("Idempotency-Key".to_string(), row.idempotency_key.clone())];
    if let Some(secret) = &connector.config.outbound_secret {
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

/// Derive the event's status from the deliveries of its latest connector run: any dead →
/// dead; all succeeded → succeeded; any retrying → retrying. When `row` is the run's only
/// delivery (the common case), the others are not read.
///
/// The deliveries are read inside the update, so a concurrent delivery of the same event
/// that wins the compare-and-swap makes this one read them again: the last writer always
/// saw every row as it is.
fn settle_event(app: &App, row: &DeliveryRecord) -> Result<(), StoreError> {
    let mut failed = None;
    app.storage.update_event(&row.event_id, &mut |record| {
        failed = None;
        let only_this = row.index == record.deliveries_from
            && record
                .attempts
                .last()
                .is_some_and(|attempt| attempt.deliveries == 1);
        let statuses: Vec<DeliveryStatus> = if only_this {
            vec![row.status]
        } else {
            // Read on every try of the update: when a concurrent delivery of the same
            // event wins the compare-and-swap, its row has changed too.
            match app.storage.deliveries(&row.event_id) {
                Ok(rows) => rows
                    .iter()
                    .filter(|r| r.index >= record.deliveries_from)
                    .map(|r| r.status)
                    .collect(),
                Err(err) => {
                    failed = Some(err);
                    return;
                }
            }
        };
        if statuses.is_empty() {
            return;
        }
        let status = if statuses.contains(&DeliveryStatus::Dead) {
            Status::Dead
        } else if statuses.iter().all(|s| *s == DeliveryStatus::Succeeded) {
            Status::Succeeded
        } else if statuses.contains(&DeliveryStatus::Retrying) {
            Status::Retrying
        } else {
            Status::Pending
        };
        record.status = status;
        if status == Status::Dead && record.error.is_none() {
            record.error = Some(format!(
                "delivery {} to {} failed permanently",
                row.index, row.request.url
            ));
        }
    })?;
    match failed {
        Some(err) => Err(err),
        None => Ok(()),
    }
}
