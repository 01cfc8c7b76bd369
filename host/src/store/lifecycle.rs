//! The rules of an event's life, written once for every engine: what may be replayed and
//! what a replay resets, what a connector run makes of an event ([`handled`],
//! [`deliveries_settled`], [`duplicate`], [`retry_at`], [`dead`]), how an event's status follows its
//! deliveries, and how a record's `updated_at` grows. Engines and the dispatcher store what
//! these decide; they decide nothing of it.

use super::{Attempt, DeliveryStatus, EventRecord, ReplayError, Status};

/// Whether an event at `status` may be replayed; `Err` says why not.
pub fn replayable(status: Status) -> Result<(), ReplayError> {
    let reason = match status {
        Status::Succeeded | Status::Dead => return Ok(()),
        Status::Pending | Status::Retrying => "it is still being processed",
        Status::Rejected => "its signature was never verified",
        Status::Duplicate => "it repeats another event; replay that one",
    };
    Err(ReplayError::NotReplayable(status.as_str(), reason))
}

/// Send `record` back to its connector: pending again, its error and schedule cleared, and
/// the new run's deliveries numbered after the `existing` ones (the log keeps both runs).
/// Their `Idempotency-Key`s are the first run's unless `new_keys`
/// ([`EventRecord::new_keys`], [`idempotency_key`]).
pub fn reset_for_replay(
    record: &mut EventRecord,
    existing: u32,
    new_keys: bool,
) -> Result<(), ReplayError> {
    replayable(record.status)?;
    record.status = Status::Pending;
    record.error = None;
    record.next_attempt_at = None;
    record.deliveries_from = existing;
    record.new_keys = new_keys;
    record.updated_at = next_update(record.updated_at);
    Ok(())
}

/// The event repeats `first_id` (the same dedupe key within the window): kept as a record,
/// never dispatched. Every engine marks a duplicate so.
pub fn duplicate(record: &mut EventRecord, first_id: String) {
    record.status = Status::Duplicate;
    record.duplicate_of = Some(first_id);
}

/// The connector handled the event in `attempt`: succeeded, until the first tries of the
/// deliveries it made say otherwise ([`deliveries_settled`], [`duplicate`]).
pub fn handled(record: &mut EventRecord, attempt: Attempt) {
    record.attempts.push(attempt);
    record.next_attempt_at = None;
    record.status = Status::Succeeded;
}

/// The deliveries of a [`handled`] run settled the event at `status` ([`settled`]), after
/// their first tries or a later one; `error` (why a delivery is dead) is kept unless the
/// record has one.
pub fn deliveries_settled(record: &mut EventRecord, status: Status, error: Option<String>) {
    record.status = status;
    if record.error.is_none() {
        record.error = error;
    }
}

/// `attempt` failed, and another is due at `at` (unix ms).
pub fn retry_at(record: &mut EventRecord, attempt: Attempt, at: u64) {
    record.attempts.push(attempt);
    record.status = Status::Retrying;
    record.next_attempt_at = Some(at);
}

/// The event ends with `attempt`, never to succeed: the connector rejected it, its result
/// cannot be taken, its request is gone or its tries ran out. `error` says which.
pub fn dead(record: &mut EventRecord, attempt: Attempt, error: String) {
    record.attempts.push(attempt);
    record.status = Status::Dead;
    record.next_attempt_at = None;
    record.error = Some(error);
}

/// The `Idempotency-Key` of the delivery at `index` (in the event's log) of `record`'s
/// latest run: `{id}-{n}` with `n` counted from the run's first delivery, so every run
/// sends the keys the first one sent; after a replay with new keys, `n` is the index
/// itself, a key no run has sent.
pub fn idempotency_key(record: &EventRecord, index: u32) -> String {
    let n = if record.new_keys {
        index
    } else {
        index.saturating_sub(record.deliveries_from)
    };
    format!("{}-{n}", record.id)
}

/// The status of an event whose latest connector run made deliveries with `statuses`: any
/// dead → dead; all succeeded → succeeded; any retrying → retrying; else pending. `None`
/// without deliveries (the run decided the status itself).
pub fn settled(statuses: &[DeliveryStatus]) -> Option<Status> {
    if statuses.is_empty() {
        return None;
    }
    Some(if statuses.contains(&DeliveryStatus::Dead) {
        Status::Dead
    } else if statuses.iter().all(|s| *s == DeliveryStatus::Succeeded) {
        Status::Succeeded
    } else if statuses.contains(&DeliveryStatus::Retrying) {
        Status::Retrying
    } else {
        Status::Pending
    })
}

/// The `updated_at` of a record written now over one written at `previous`: later than
/// `previous` even when the clock says otherwise, so that of two states of one record the
/// newer has the greater value (recovery and concurrent writers compare them).
pub fn next_update(previous: u64) -> u64 {
    crate::time::now_ms().max(previous + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_finished_events_are_replayed() {
        for status in [Status::Succeeded, Status::Dead] {
            assert!(replayable(status).is_ok());
        }
        for status in [
            Status::Pending,
            Status::Retrying,
            Status::Rejected,
            Status::Duplicate,
        ] {
            assert!(matches!(
                replayable(status),
                Err(ReplayError::NotReplayable(s, _)) if s == status.as_str()
            ));
        }
    }

    #[test]
    fn a_replay_resets_the_schedule_and_numbers_after_the_old_deliveries() {
        let mut record = EventRecord::received("01A".into(), "stripe".into(), 10, "stripe");
        record.status = Status::Dead;
        record.error = Some("gave up".into());
        record.next_attempt_at = Some(99);
        let before = record.updated_at;
        reset_for_replay(&mut record, 2, false).unwrap();
        assert_eq!(record.status, Status::Pending);
        assert_eq!((record.error, record.next_attempt_at), (None, None));
        assert_eq!(record.deliveries_from, 2);
        assert!(record.updated_at > before);
    }

    fn attempt(number: u32) -> Attempt {
        Attempt {
            number,
            at: 1,
            duration_ms: 0,
            plugin_digest: String::new(),
            plugin_version: String::new(),
            outcome: "retry".into(),
            message: None,
            deliveries: 0,
            memory_bytes: 0,
            logs: Vec::new(),
            fetches: Vec::new(),
        }
    }

    #[test]
    fn a_run_moves_the_event_on() {
        let mut record = EventRecord::received("01R".into(), "c".into(), 1, "none");
        retry_at(&mut record, attempt(1), 500);
        assert_eq!(record.status, Status::Retrying);
        assert_eq!(record.next_attempt_at, Some(500));
        assert_eq!(record.error, None);

        handled(&mut record, attempt(2));
        assert_eq!(record.status, Status::Succeeded);
        assert_eq!(record.next_attempt_at, None);
        deliveries_settled(&mut record, Status::Dead, Some("delivery 0 dead".into()));
        assert_eq!(record.status, Status::Dead);
        assert_eq!(record.error.as_deref(), Some("delivery 0 dead"));
        deliveries_settled(&mut record, Status::Dead, Some("another".into()));
        assert_eq!(
            record.error.as_deref(),
            Some("delivery 0 dead"),
            "the first error stays"
        );

        let mut record = EventRecord::received("01D".into(), "c".into(), 1, "none");
        record.next_attempt_at = Some(9);
        dead(&mut record, attempt(1), "rejected".into());
        assert_eq!(record.status, Status::Dead);
        assert_eq!(record.next_attempt_at, None);
        assert_eq!(record.error.as_deref(), Some("rejected"));
        assert_eq!(record.attempts.len(), 1);
    }

    #[test]
    fn an_event_follows_its_deliveries() {
        use DeliveryStatus::*;
        assert_eq!(settled(&[]), None);
        assert_eq!(settled(&[Succeeded, Succeeded]), Some(Status::Succeeded));
        assert_eq!(settled(&[Succeeded, Dead, Retrying]), Some(Status::Dead));
        assert_eq!(settled(&[Succeeded, Retrying]), Some(Status::Retrying));
        assert_eq!(settled(&[Succeeded, Pending]), Some(Status::Pending));
    }

    #[test]
    fn updated_at_always_grows() {
        let far = crate::time::now_ms() + 60_000;
        assert_eq!(next_update(far), far + 1, "even when the clock is behind");
        assert!(next_update(0) >= crate::time::now_ms() - 1);
    }

    #[test]
    fn a_replay_sends_the_first_runs_keys_unless_it_asks_for_new_ones() {
        let mut record = EventRecord::received("01E".into(), "c".into(), 1, "none");
        assert_eq!(idempotency_key(&record, 0), "01E-0");
        assert_eq!(idempotency_key(&record, 1), "01E-1");
        record.status = Status::Dead;
        reset_for_replay(&mut record, 2, false).unwrap();
        assert_eq!(idempotency_key(&record, 2), "01E-0");
        assert_eq!(idempotency_key(&record, 3), "01E-1");
        record.status = Status::Succeeded;
        reset_for_replay(&mut record, 4, true).unwrap();
        assert_eq!(idempotency_key(&record, 4), "01E-4");
    }
}
