//! Signed Stripe events for the load generator: every request carries a distinct `evt_…`
//! id (the Stripe connector dedupes on it, so a reused id would measure the duplicate path)
//! and a fresh timestamp.
//!
//! Events are signed ahead of the run so the senders only clone two `Bytes`. If a run
//! outlasts the pre-signed supply, the sender that runs out signs the next one itself:
//! slower, counted in the report, but never a reused event.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use anyhow::{Context as _, anyhow};
use bytes::Bytes;
use http::HeaderValue;
use switchyard::secret::Secret;
use switchyard::verify::{self, Scheme};

/// The header Stripe signs with.
pub const SIGNATURE_HEADER: &str = "stripe-signature";

/// One request body and the `Stripe-Signature` value that signs it.
#[derive(Clone)]
pub struct SignedEvent {
    pub body: Bytes,
    pub signature: HeaderValue,
}

/// Hands out each event once, across every sender.
pub struct EventSource {
    secret: Secret,
    /// Makes ids unique across runs against the same store.
    prefix: String,
    presigned: Vec<SignedEvent>,
    /// Index of the next event to hand out.
    next: AtomicUsize,
    /// Events signed by a sender because the pre-signed supply ran out.
    signed_late: AtomicU64,
}

impl EventSource {
    /// Sign `count` events now, on every core.
    pub fn new(secret: &str, count: usize) -> anyhow::Result<Self> {
        let secret = Secret::new(secret);
        let prefix = ulid::Ulid::new().to_string();
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = count.div_ceil(threads).max(1);
        let now = switchyard::time::now_s();
        let presigned = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..count)
                .step_by(chunk)
                .map(|start| {
                    let (secret, prefix) = (&secret, &prefix);
                    scope.spawn(move || {
                        (start..(start + chunk).min(count))
                            .map(|i| sign(secret, prefix, i, now))
                            .collect::<anyhow::Result<Vec<_>>>()
                    })
                })
                .collect();
            let mut all = Vec::with_capacity(count);
            for handle in handles {
                all.extend(
                    handle
                        .join()
                        .map_err(|_| anyhow!("a signing thread panicked"))??,
                );
            }
            anyhow::Ok(all)
        })?;
        Ok(EventSource {
            secret,
            prefix,
            presigned,
            next: AtomicUsize::new(0),
            signed_late: AtomicU64::new(0),
        })
    }

    /// The next unused event.
    pub fn next_event(&self) -> anyhow::Result<SignedEvent> {
        let i = self.next.fetch_add(1, Ordering::Relaxed);
        match self.presigned.get(i) {
            Some(event) => Ok(event.clone()),
            None => {
                self.signed_late.fetch_add(1, Ordering::Relaxed);
                sign(&self.secret, &self.prefix, i, switchyard::time::now_s())
            }
        }
    }

    pub fn presigned(&self) -> usize {
        self.presigned.len()
    }

    pub fn signed_late(&self) -> u64 {
        self.signed_late.load(Ordering::Relaxed)
    }
}

/// Event number `i`, shaped like what Stripe sends (trimmed to the fields connectors use),
/// signed at `timestamp`.
fn sign(secret: &Secret, prefix: &str, i: usize, timestamp: i64) -> anyhow::Result<SignedEvent> {
    let body = format!(
        concat!(
            r#"{{"id":"evt_{prefix}{i:010}","object":"event","api_version":"2024-06-20","#,
            r#""created":{timestamp},"data":{{"object":{{"id":"in_{i}","object":"invoice","#,
            r#""amount_paid":2000}}}},"livemode":false,"pending_webhooks":1,"#,
            r#""request":{{"id":null,"idempotency_key":null}},"type":"invoice.paid"}}"#
        ),
        prefix = prefix,
        i = i,
        timestamp = timestamp
    );
    let headers = verify::sign(&Scheme::Stripe, secret, body.as_bytes(), timestamp, "")
        .map_err(|err| anyhow!("signing an event: {err}"))?;
    let (_, value) = headers
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(SIGNATURE_HEADER))
        .ok_or_else(|| anyhow!("sign() gave no {SIGNATURE_HEADER} header"))?;
    Ok(SignedEvent {
        body: Bytes::from(body),
        signature: HeaderValue::from_str(&value).context("signature header value")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_are_unique_valid_json_and_never_run_out() {
        let source = EventSource::new("whsec_test", 3).unwrap();
        let ids: std::collections::HashSet<String> = (0..5)
            .map(|_| {
                let event = source.next_event().unwrap();
                let json: serde_json::Value = serde_json::from_slice(&event.body).unwrap();
                json["id"].as_str().unwrap().to_string()
            })
            .collect();
        assert_eq!(ids.len(), 5);
        assert_eq!(source.signed_late(), 2);
    }
}
