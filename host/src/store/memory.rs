//! The in-memory engine: the reference every engine is held to (the conformance suite,
//! `conformance.rs`, runs against it first), and a store for tests that need no disk.
//! Nothing survives the process.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use crate::store::tally::Counts;

use super::due::{self, Queues};
use super::{
    ConnectorKv, Dedupe, DedupeCursor, DeliveryRecord, DispatchQueue, EventLog, EventQuery,
    EventRecord, Inserted, Lease, NewEvent, Outbox, ReplayError, Result, Status, StoredRequest,
    lifecycle,
};

/// Records scanned for one page of the event log at most (as the sled engine does).
const MAX_SCAN: usize = 10_000;

/// An engine that keeps everything in memory.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    queues: Queues,
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore").finish_non_exhaustive()
    }
}

#[derive(Default)]
struct State {
    /// By id: ULIDs, so in order of arrival.
    events: BTreeMap<String, EventRecord>,
    requests: HashMap<String, StoredRequest>,
    /// `(connector, key)` → the event that claimed it, and when.
    dedupe: BTreeMap<(String, String), (String, u64)>,
    /// `{event id}/{index:05}` → the delivery.
    outbox: BTreeMap<String, DeliveryRecord>,
    kv: BTreeMap<(String, String), Vec<u8>>,
}

fn delivery_key(delivery: &DeliveryRecord) -> String {
    format!("{}/{:05}", delivery.event_id, delivery.index)
}

impl MemoryStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every change is made whole under the lock.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[async_trait::async_trait]
impl EventLog for MemoryStore {
    async fn insert_event(&self, event: NewEvent) -> Result<Inserted> {
        let NewEvent {
            mut record,
            request,
            dedupe,
        } = event;
        let queued = {
            let mut state = self.state();
            record.dedupe_key = dedupe.as_ref().map(|(key, _)| key.clone());
            if let Some((key, window)) = &dedupe {
                let claim = (record.connector.clone(), key.clone());
                let first = state
                    .dedupe
                    .get(&claim)
                    .filter(|(id, at)| {
                        record.received_at.saturating_sub(*at) <= *window
                            && state.events.contains_key(id)
                    })
                    .map(|(id, _)| id.clone());
                match first {
                    Some(first_id) => {
                        crate::store::lifecycle::duplicate(&mut record, first_id);
                    }
                    None => {
                        state
                            .dedupe
                            .insert(claim, (record.id.clone(), record.received_at));
                    }
                }
            }
            state.requests.insert(record.id.clone(), request);
            state.events.insert(record.id.clone(), record.clone());
            record.status == Status::Pending
        };
        if queued {
            self.queues
                .dispatch(&record.connector)
                .push(&record.id, crate::time::now_ms());
        }
        Ok(match record.duplicate_of {
            Some(first_id) => Inserted::Duplicate {
                id: record.id,
                first_id,
            },
            None => Inserted::Accepted { id: record.id },
        })
    }

    async fn sync(&self) -> Result<()> {
        Ok(())
    }

    async fn event(&self, id: &str) -> Result<Option<EventRecord>> {
        Ok(self.state().events.get(id).cloned())
    }

    async fn request(&self, id: &str) -> Result<Option<StoredRequest>> {
        Ok(self.state().requests.get(id).cloned())
    }

    async fn update_event(
        &self,
        id: &str,
        update: &mut (dyn for<'r> FnMut(&'r mut EventRecord) + Send),
    ) -> Result<Option<EventRecord>> {
        let mut state = self.state();
        let Some(record) = state.events.get_mut(id) else {
            return Ok(None);
        };
        update(record);
        record.updated_at = lifecycle::next_update(record.updated_at);
        Ok(Some(record.clone()))
    }

    async fn counts(&self, since: u64) -> Result<Option<HashMap<String, (Counts, Counts)>>> {
        let state = self.state();
        let events = state
            .events
            .values()
            .map(|r| (r.connector.as_str(), r.received_at, r.status));
        Ok(Some(crate::store::tally::count(events, since)))
    }

    async fn list_events(&self, query: &EventQuery) -> Result<(Vec<EventRecord>, Option<String>)> {
        let state = self.state();
        let lower = query
            .since
            .map(|ms| ulid::Ulid::from_parts(ms, 0).to_string())
            .unwrap_or_default();
        let mut upper = query
            .until
            .map(|ms| ulid::Ulid::from_parts(ms, 0).to_string());
        if let Some(cursor) = &query.cursor {
            upper = Some(match upper {
                Some(u) if u < *cursor => u,
                _ => cursor.clone(),
            });
        }
        let limit = query.limit.max(1);
        let range = state
            .events
            .range(lower..)
            .rev()
            .filter(|(id, _)| upper.as_ref().is_none_or(|u| id.as_str() < u.as_str()));
        let (mut page, mut scanned, mut last) = (Vec::new(), 0, None);
        for (id, record) in range {
            scanned += 1;
            last = Some(id.clone());
            let matches = query
                .connector
                .as_ref()
                .is_none_or(|c| *c == record.connector)
                && query.status.is_none_or(|s| s == record.status)
                && (query.key.is_none() || query.key == record.dedupe_key);
            if matches {
                page.push(record.clone());
                if page.len() == limit {
                    break;
                }
            }
            if scanned >= MAX_SCAN {
                break;
            }
        }
        let exhausted = page.len() < limit && scanned < MAX_SCAN;
        Ok((page, if exhausted { None } else { last }))
    }

    async fn replay(&self, id: &str, new_keys: bool) -> Result<EventRecord, ReplayError> {
        let record = {
            let mut state = self.state();
            let prefix = format!("{id}/");
            let existing = state
                .outbox
                .range(prefix.clone()..)
                .take_while(|(key, _)| key.starts_with(&prefix))
                .count() as u32;
            let record = state
                .events
                .get_mut(id)
                .ok_or_else(|| ReplayError::NotFound(id.to_string()))?;
            lifecycle::reset_for_replay(record, existing, new_keys)?;
            record.clone()
        };
        self.queues
            .dispatch(&record.connector)
            .push(&record.id, crate::time::now_ms());
        Ok(record)
    }

    async fn purge_before(&self, cutoff: u64, batch: usize) -> Result<usize> {
        let mut state = self.state();
        let old: Vec<String> = state
            .events
            .iter()
            .take(batch)
            .take_while(|(_, record)| record.received_at < cutoff)
            .map(|(id, _)| id.clone())
            .collect();
        for id in &old {
            let Some(record) = state.events.remove(id) else {
                continue;
            };
            state.requests.remove(id);
            let prefix = format!("{id}/");
            state.outbox.retain(|key, _| !key.starts_with(&prefix));
            if let Some(key) = record.dedupe_key {
                let claim = (record.connector, key);
                if state
                    .dedupe
                    .get(&claim)
                    .is_some_and(|(claimer, _)| claimer == id)
                {
                    state.dedupe.remove(&claim);
                }
            }
        }
        Ok(old.len())
    }
}

#[async_trait::async_trait]
impl DispatchQueue for MemoryStore {
    async fn next_dispatch(&self, connector: &str, wait: Duration) -> Result<Option<Lease>> {
        Ok(self.queues.next_dispatch(connector, wait).await)
    }

    async fn finish_dispatch(
        &self,
        lease: Lease,
        record: &EventRecord,
        deliveries: &[DeliveryRecord],
        again_at: Option<u64>,
    ) -> Result<()> {
        {
            let mut state = self.state();
            let Some(current) = state.events.get(&record.id) else {
                // Gone while it was handled: nothing to deliver.
                drop(state);
                due::end(lease, None);
                return Ok(());
            };
            let mut record = record.clone();
            record.updated_at = lifecycle::next_update(current.updated_at);
            for delivery in deliveries {
                state
                    .outbox
                    .insert(delivery_key(delivery), delivery.clone());
            }
            state.events.insert(record.id.clone(), record);
        }
        let now = crate::time::now_ms();
        for delivery in deliveries.iter().filter(|d| !d.status.is_final()) {
            self.queues.deliveries.push(
                &delivery_key(delivery),
                delivery.next_attempt_at.unwrap_or(now),
            );
        }
        due::end(lease, again_at);
        Ok(())
    }

    async fn release_dispatch(&self, lease: Lease, after: Duration) -> Result<()> {
        due::end(
            lease,
            Some(crate::time::now_ms() + after.as_millis() as u64),
        );
        Ok(())
    }

    async fn forget_dispatch(&self, lease: Lease) -> Result<()> {
        due::end(lease, None);
        Ok(())
    }

    fn dispatch_backlog(&self) -> Vec<(String, usize)> {
        self.queues.dispatch_backlog()
    }
}

#[async_trait::async_trait]
impl Outbox for MemoryStore {
    async fn next_delivery(&self, wait: Duration) -> Result<Option<(Lease, DeliveryRecord)>> {
        self.queues
            .next_delivery(wait, |key| {
                Ok(self
                    .state()
                    .outbox
                    .get(key)
                    .filter(|row| !row.status.is_final())
                    .cloned())
            })
            .await
    }

    async fn finish_delivery(&self, lease: Lease, delivery: &DeliveryRecord) -> Result<()> {
        let key = delivery_key(delivery);
        let kept = {
            let mut state = self.state();
            // Removed by retention meanwhile: not brought back.
            let kept = state.outbox.contains_key(&key);
            if kept {
                state.outbox.insert(key, delivery.clone());
            }
            kept
        };
        let again = (kept && !delivery.status.is_final())
            .then(|| delivery.next_attempt_at.unwrap_or_else(crate::time::now_ms));
        due::end(lease, again);
        Ok(())
    }

    async fn deliveries(&self, event_id: &str) -> Result<Vec<DeliveryRecord>> {
        let prefix = format!("{event_id}/");
        Ok(self
            .state()
            .outbox
            .range(prefix.clone()..)
            .take_while(|(key, _)| key.starts_with(&prefix))
            .map(|(_, row)| row.clone())
            .collect())
    }
}

#[async_trait::async_trait]
impl Dedupe for MemoryStore {
    async fn purge_dedupe(
        &self,
        cutoff: u64,
        from: Option<DedupeCursor>,
        batch: usize,
    ) -> Result<(usize, Option<DedupeCursor>)> {
        let mut state = self.state();
        let start = from
            .and_then(|c| serde_json::from_slice::<(String, String)>(&c.0).ok())
            .unwrap_or_default();
        let seen: Vec<((String, String), u64)> = state
            .dedupe
            .range(start..)
            .take(batch)
            .map(|(key, (_, at))| (key.clone(), *at))
            .collect();
        let mut removed = 0;
        for (key, at) in &seen {
            if *at < cutoff {
                state.dedupe.remove(key);
                removed += 1;
            }
        }
        let next =
            (seen.len() == batch)
                .then(|| seen.last())
                .flatten()
                .map(|((connector, key), _)| {
                    // Just after the last one seen.
                    let mut next = key.clone();
                    next.push('\0');
                    DedupeCursor(serde_json::to_vec(&(connector, next)).unwrap_or_default())
                });
        Ok((removed, next))
    }
}

#[async_trait::async_trait]
impl ConnectorKv for MemoryStore {
    async fn kv_get(&self, connector: &str, key: &str) -> Result<Option<Vec<u8>>> {
        Ok(self
            .state()
            .kv
            .get(&(connector.to_string(), key.to_string()))
            .cloned())
    }

    async fn kv_set(&self, connector: &str, key: &str, value: &[u8]) -> Result<()> {
        self.state()
            .kv
            .insert((connector.to_string(), key.to_string()), value.to_vec());
        Ok(())
    }

    async fn kv_delete(&self, connector: &str, key: &str) -> Result<()> {
        self.state()
            .kv
            .remove(&(connector.to_string(), key.to_string()));
        Ok(())
    }

    async fn kv_count(&self, connector: &str, limit: usize) -> Result<usize> {
        let state = self.state();
        let from = (connector.to_string(), String::new());
        Ok(state
            .kv
            .range(from..)
            .take_while(|((c, _), _)| c == connector)
            .take(limit)
            .count())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::MemoryStore;
    use crate::store::conformance::{self, Fresh};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_reference_engine_conforms() {
        conformance::run("memory", || async {
            Fresh {
                store: Arc::new(MemoryStore::new()),
                keep: Box::new(()),
            }
        })
        .await;
    }
}
