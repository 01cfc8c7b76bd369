//! Work due at a time, in memory: the dispatch queues (one per connector) and the delivery
//! queue of the single-node engines. The engine holds what is queued (sled: `pending`,
//! `queue`, `outbox_open`); these say when each item is due and hand it to one worker at a
//! time, and the engine fills them again at every start.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::Notify;

/// Items due at a unix-ms time, each handed out to one worker at a time.
#[derive(Default)]
pub(crate) struct DueQueue {
    inner: Mutex<Inner>,
    /// Woken when an item is queued (or due sooner).
    queued: Notify,
}

#[derive(Default)]
struct Inner {
    /// (due, id); an entry whose `due` no longer matches `at` is stale and skipped.
    heap: BinaryHeap<Reverse<(u64, String)>>,
    /// When each queued item is due.
    at: HashMap<String, u64>,
    /// Items handed out and not finished.
    leased: HashSet<String>,
    /// Items queued again while leased: due then once their lease ends.
    again: HashMap<String, u64>,
}

impl DueQueue {
    fn inner(&self) -> MutexGuard<'_, Inner> {
        // Every change is made whole under the lock: a panic elsewhere leaves it usable.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queue `id`, due at `at`; already queued, it is due at the sooner of the two. One
    /// that is leased right now is queued once its lease ends.
    pub fn push(&self, id: &str, at: u64) {
        {
            let mut inner = self.inner();
            if inner.leased.contains(id) {
                let again = inner.again.entry(id.to_string()).or_insert(at);
                *again = (*again).min(at);
                return;
            }
            if inner.at.get(id).is_some_and(|queued| *queued <= at) {
                return;
            }
            inner.at.insert(id.to_string(), at);
            inner.heap.push(Reverse((at, id.to_string())));
        }
        self.queued.notify_waiters();
        self.queued.notify_one();
    }

    /// The next item due now, waiting at most `wait` for one; it is leased until
    /// [`DueQueue::finish`].
    pub async fn pop(&self, wait: Duration) -> Option<String> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let notified = self.queued.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let next_due = {
                let mut inner = self.inner();
                let now = crate::time::now_ms();
                loop {
                    match inner.heap.peek() {
                        Some(Reverse((at, id))) if inner.at.get(id) != Some(at) => {
                            inner.heap.pop();
                        }
                        Some(Reverse((at, _))) if *at <= now => {
                            let Reverse((_, id)) = inner.heap.pop().expect("peeked");
                            inner.at.remove(&id);
                            inner.leased.insert(id.clone());
                            return Some(id);
                        }
                        Some(Reverse((at, _))) => break Some(*at - now),
                        None => break None,
                    }
                }
            };
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return None;
            }
            let mut sleep = deadline - now;
            if let Some(ms) = next_due {
                sleep = sleep.min(Duration::from_millis(ms));
            }
            tokio::select! {
                _ = &mut notified => {}
                _ = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// The lease on `id` ends; with `again_at` it is due again then (as is any push made
    /// while it was leased).
    pub fn finish(&self, id: &str, again_at: Option<u64>) {
        let pushed = {
            let mut inner = self.inner();
            inner.leased.remove(id);
            let earlier = inner.again.remove(id);
            match (again_at, earlier) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            }
        };
        if let Some(at) = pushed {
            self.push(id, at);
        }
    }

    /// Items queued (leased ones not counted).
    pub fn len(&self) -> usize {
        self.inner().at.len()
    }
}

/// How long an item whose result could not be stored waits before it is handed out
/// again.
pub(crate) const RETRY_MS: u64 = 5_000;

/// What a lease of these queues holds: the queue the item came from. Dropped unfinished (a task that
/// panicked, or was cancelled), the item is due again at once.
pub(crate) struct Held {
    pub queue: Arc<DueQueue>,
    pub id: String,
    pub finished: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.finished {
            self.queue.finish(&self.id, Some(crate::time::now_ms()));
        }
    }
}

/// End a lease of these queues: the item is due again at `again_at`, or not at all. A
/// lease of another engine is left alone.
pub(crate) fn end(lease: crate::store::Lease, again_at: Option<u64>) {
    if let Some(mut held) = lease.into_handle::<Held>() {
        held.finished = true;
        held.queue.finish(&held.id, again_at);
    }
}

/// A lease on an item popped from `queue`.
fn lease(queue: Arc<DueQueue>, id: String) -> crate::store::Lease {
    crate::store::Lease::new(
        id.clone(),
        Held {
            queue,
            id,
            finished: false,
        },
    )
}

/// The dispatch queues, one per connector, created when first asked for.
#[derive(Default)]
pub(crate) struct Queues {
    dispatch: Mutex<HashMap<String, Arc<DueQueue>>>,
    pub deliveries: Arc<DueQueue>,
}

impl Queues {
    pub fn dispatch(&self, connector: &str) -> Arc<DueQueue> {
        self.dispatch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(connector.to_string())
            .or_default()
            .clone()
    }

    /// The next event of `connector` due, leased.
    pub async fn next_dispatch(
        &self,
        connector: &str,
        wait: Duration,
    ) -> Option<crate::store::Lease> {
        let queue = self.dispatch(connector);
        let id = queue.pop(wait).await?;
        Some(lease(queue, id))
    }

    /// The next delivery due, leased, with `read` giving its row; one that reads as `None`
    /// (gone, or final meanwhile) is dropped from the queue and the next one taken.
    pub async fn next_delivery<R>(
        &self,
        wait: Duration,
        mut read: impl FnMut(&str) -> crate::store::Result<Option<R>>,
    ) -> crate::store::Result<Option<(crate::store::Lease, R)>> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let Some(key) = self.deliveries.pop(left).await else {
                return Ok(None);
            };
            let held = lease(self.deliveries.clone(), key.clone());
            match read(&key) {
                Ok(Some(row)) => return Ok(Some((held, row))),
                Ok(None) => end(held, None),
                Err(err) => {
                    end(held, Some(crate::time::now_ms() + RETRY_MS));
                    return Err(err);
                }
            }
        }
    }

    /// Events waiting, by connector (leased ones not counted).
    pub fn dispatch_backlog(&self) -> Vec<(String, usize)> {
        self.dispatch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .map(|(connector, q)| (connector.clone(), q.len()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn items_come_out_when_due_and_once_at_a_time() {
        let queue = DueQueue::default();
        let now = crate::time::now_ms();
        queue.push("later", now + 150);
        queue.push("now", now);
        assert_eq!(queue.pop(Duration::ZERO).await.as_deref(), Some("now"));
        assert_eq!(queue.pop(Duration::ZERO).await, None, "not due yet");
        // Queued again while leased: due once the lease ends, not before.
        queue.push("now", now);
        assert_eq!(queue.pop(Duration::from_millis(20)).await, None);
        queue.finish("now", None);
        assert_eq!(queue.pop(Duration::ZERO).await.as_deref(), Some("now"));
        let started = std::time::Instant::now();
        assert_eq!(
            queue.pop(Duration::from_secs(5)).await.as_deref(),
            Some("later")
        );
        assert!(started.elapsed() >= Duration::from_millis(100));
    }

    #[tokio::test]
    async fn a_waiting_worker_wakes_for_a_new_item() {
        let queue = Arc::new(DueQueue::default());
        let waiting = tokio::spawn({
            let queue = queue.clone();
            async move { queue.pop(Duration::from_secs(10)).await }
        });
        tokio::time::sleep(Duration::from_millis(30)).await;
        queue.push("new", crate::time::now_ms());
        let got = tokio::time::timeout(Duration::from_secs(2), waiting)
            .await
            .expect("woken")
            .unwrap();
        assert_eq!(got.as_deref(), Some("new"));
    }

    #[test]
    fn a_push_keeps_the_sooner_time_and_a_dropped_lease_requeues() {
        let queue = Arc::new(DueQueue::default());
        let now = crate::time::now_ms();
        queue.push("a", now + 60_000);
        queue.push("a", now);
        assert_eq!(queue.len(), 1);
        let popped = futures::executor::block_on(queue.pop(Duration::ZERO));
        assert_eq!(popped.as_deref(), Some("a"));
        drop(Held {
            queue: queue.clone(),
            id: "a".into(),
            finished: false,
        });
        assert_eq!(queue.len(), 1, "handed out again");
    }
}
