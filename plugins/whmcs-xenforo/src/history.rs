//! The ordering check: per WHMCS service, the last event applied, kept in kv.

use serde_json::{Value, json};
use switchyard_sdk::{Ctx, Webhook};

use crate::event::ServiceEvent;
use crate::occurred_at::OccurredAt;

/// The last event applied to one WHMCS service, as stored in kv.
#[derive(Debug)]
pub(crate) struct Applied {
    pub(crate) occurred_at: String,
    pub(crate) event: String,
    pub(crate) event_id: String,
}

/// Per WHMCS service, the newest event applied so far (`ctx.kv()`, key
/// `service/{service_id}`, a small JSON document): what keeps a late event (a retry, a
/// resend) from undoing a newer one. Inactive for an event without `occurred_at` or
/// without a service id.
pub(crate) struct ServiceHistory<'a, 'h> {
    ctx: &'a Ctx<'h>,
    event: &'a ServiceEvent,
    key: Option<String>,
}

impl<'a, 'h> ServiceHistory<'a, 'h> {
    pub(crate) fn new(ctx: &'a Ctx<'h>, event: &'a ServiceEvent) -> Self {
        let key = history_key(event);
        if event.occurred_at.is_none() {
            ctx.warn(format!(
                "{} for service {}: no `occurred_at`; applied in arrival order, without \
                 the ordering check",
                event.hook, event.service_id
            ));
        } else if key.is_none() {
            ctx.warn(format!(
                "{}: no WHMCS `service_id`; applied in arrival order, without the ordering \
                 check",
                event.hook
            ));
        }
        ServiceHistory { ctx, event, key }
    }

    /// What is stored for the service, when there is something readable.
    fn last(&self) -> Option<(Applied, OccurredAt)> {
        let key = self.key.as_deref()?;
        let raw = self.ctx.kv().get(key)?;
        let stored: Value = serde_json::from_slice(&raw).unwrap_or(Value::Null);
        let field = |name: &str| stored.get(name).and_then(Value::as_str);
        let found = field("occurred_at").and_then(OccurredAt::parse).map(|at| {
            let applied = Applied {
                occurred_at: at.text.clone(),
                event: field("event").unwrap_or("?").to_owned(),
                event_id: field("event_id").unwrap_or("?").to_owned(),
            };
            (applied, at)
        });
        if found.is_none() {
            self.ctx.warn(format!(
                "kv `{key}` holds {:?}, not a record of an applied event; ignored",
                String::from_utf8_lossy(&raw)
            ));
        }
        found
    }

    /// The newer event already applied to this service, if there is one. An event with the
    /// same `occurred_at` (a replay of the latest event, or two events the clock could not
    /// tell apart) is applied again.
    pub(crate) fn newer_applied(&self) -> Option<Applied> {
        let ours = self.event.occurred_at.as_ref()?;
        self.last()
            .filter(|(_, theirs)| theirs.instant > ours.instant)
            .map(|(applied, _)| applied)
    }

    /// Stores this event as the service's newest applied one, unless a newer one was stored
    /// meanwhile (by an event handled at the same time). The groups are already written:
    /// a failing kv write is logged, not turned into a failure.
    pub(crate) fn record_applied(&self, webhook: &Webhook) {
        let (Some(key), Some(ours)) = (self.key.as_deref(), self.event.occurred_at.as_ref()) else {
            return;
        };
        if self
            .last()
            .is_some_and(|(_, theirs)| theirs.instant > ours.instant)
        {
            return;
        }
        let record = json!({
            "occurred_at": ours.text,
            "event": self.event.hook,
            "event_id": webhook.id,
        });
        if let Err(e) = self.ctx.kv().set(key, record.to_string()) {
            self.ctx.warn(format!(
                "{} for service {}: applied, but not recorded for the ordering check: {e}",
                self.event.hook, self.event.service_id
            ));
        }
    }
}

/// The kv key of the service's history: `service/{id}` for a WHMCS service id (digits,
/// no leading zeros, not 0); `None` without one (the PHP hook sends 0 when WHMCS gave
/// none), so unrelated events never share a history.
fn history_key(event: &ServiceEvent) -> Option<String> {
    let id = event.service_id.trim_start_matches('0');
    (!id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_digit()))
        .then(|| format!("service/{id}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tests::{T1, T3, event_at, history, host};

    #[test]
    fn the_record_never_moves_back() {
        // An event handled at the same time recorded a newer one after this event's check.
        let host = host().kv_entry(
            "service/42",
            json!({"occurred_at": T3, "event": "AfterModuleTerminate", "event_id": "evt_t"})
                .to_string(),
        );
        let webhook = event_at("AfterModuleCreate", json!(12), json!(T1));
        let event = ServiceEvent::parse(&webhook).unwrap();
        let ctx = host.ctx();
        let history_of = ServiceHistory::new(&ctx, &event);
        assert_eq!(
            history_of.newer_applied().unwrap().event,
            "AfterModuleTerminate"
        );
        history_of.record_applied(&webhook);
        assert_eq!(history(&host).unwrap().0, T3);
    }
}
