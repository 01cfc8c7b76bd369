//! The WHMCS event: the body the PHP hook sends, and what its hook does to the product's
//! XenForo group.

use std::collections::BTreeSet;

use serde_json::Value;
use switchyard_sdk::{Failure, Webhook};

use crate::occurred_at::OccurredAt;

/// A `group_map` value meaning "a known product that grants no group". XenForo group ids
/// start at 1.
pub(crate) const NO_GROUP: u64 = 0;

/// What a hook does to the product's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    /// Create, unsuspend: the service is active.
    Grant,
    /// Suspend, terminate: the service is not active.
    Revoke,
    /// Change package: the new product is the one that counts.
    Switch,
}

impl Action {
    fn for_hook(hook: &str) -> Option<Action> {
        match hook {
            "AfterModuleCreate" | "AfterModuleUnsuspend" => Some(Action::Grant),
            "AfterModuleSuspend" | "AfterModuleTerminate" => Some(Action::Revoke),
            "AfterModuleChangePackage" => Some(Action::Switch),
            _ => None,
        }
    }
}

/// The secondary groups after `action` for a product granting `group`; `mapped` is every
/// group `group_map` manages. Pure, so replaying an event gives the same set: applying it
/// to its own result changes nothing.
pub(crate) fn next_groups(
    action: Action,
    group: u64,
    current: &BTreeSet<u64>,
    mapped: &BTreeSet<u64>,
) -> BTreeSet<u64> {
    let mut next = current.clone();
    match action {
        Action::Grant => {
            next.insert(group);
        }
        Action::Revoke => {
            next.remove(&group);
        }
        Action::Switch => {
            next.retain(|g| !mapped.contains(g));
            next.insert(group);
        }
    }
    next.remove(&NO_GROUP);
    next
}

/// The body the PHP hook sends (see the crate README).
#[derive(Debug)]
pub(crate) struct ServiceEvent {
    pub(crate) hook: String,
    pub(crate) action: Action,
    /// As sent, or `?` when absent (log lines only).
    pub(crate) service_id: String,
    pub(crate) product_id: String,
    pub(crate) email: String,
    /// `None` when the event has no `occurred_at`: it is applied without the ordering check.
    pub(crate) occurred_at: Option<OccurredAt>,
}

impl ServiceEvent {
    pub(crate) fn parse(webhook: &Webhook) -> Result<ServiceEvent, Failure> {
        let body: Value = webhook.json()?;
        let Some(fields) = body.as_object() else {
            return Err(Failure::reject("WHMCS event is not a JSON object"));
        };
        let text = |name: &str| match fields.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() => Ok(s.trim().to_owned()),
            Some(Value::Number(n)) if n.is_u64() => Ok(n.to_string()),
            Some(_) => Err(Failure::reject(format!(
                "WHMCS event field `{name}` is empty or not a string/number"
            ))),
            None => Err(Failure::reject(format!(
                "WHMCS event has no `{name}` field"
            ))),
        };
        let hook = text("event")?;
        let Some(action) = Action::for_hook(&hook) else {
            return Err(Failure::reject(format!(
                "unsupported WHMCS event {hook:?} (expected AfterModuleCreate, \
                 AfterModuleChangePackage, AfterModuleSuspend, AfterModuleUnsuspend or \
                 AfterModuleTerminate)"
            )));
        };
        let product_id = text("product_id")?;
        if !product_id.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Failure::reject(format!(
                "WHMCS event field `product_id` is {product_id:?}, not a product id"
            )));
        }
        // Strip leading zeros so "012" and 12 find the same `group_map` entry.
        let product_id = match product_id.trim_start_matches('0') {
            "" => "0".to_owned(),
            digits => digits.to_owned(),
        };
        let email = text("email")?;
        if !email.contains('@') {
            return Err(Failure::reject(format!(
                "WHMCS event field `email` is {email:?}, not an email address"
            )));
        }
        let occurred_at = match fields.get("occurred_at") {
            None | Some(Value::Null) => None,
            Some(Value::String(s)) => Some(OccurredAt::parse(s.trim()).ok_or_else(|| {
                Failure::reject(format!(
                    "WHMCS event field `occurred_at` is {s:?}, not an RFC 3339 time"
                ))
            })?),
            Some(other) => {
                return Err(Failure::reject(format!(
                    "WHMCS event field `occurred_at` is {other}, not an RFC 3339 time"
                )));
            }
        };
        Ok(ServiceEvent {
            hook,
            action,
            service_id: text("service_id").unwrap_or_else(|_| "?".to_owned()),
            product_id,
            email,
            occurred_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaying_gives_the_same_state() {
        let mapped = BTreeSet::from([5, 6, 7]);
        let start = BTreeSet::from([3, 5, 7]);
        for action in [Action::Grant, Action::Revoke, Action::Switch] {
            for group in [5, 6, NO_GROUP] {
                let once = next_groups(action, group, &start, &mapped);
                let twice = next_groups(action, group, &once, &mapped);
                assert_eq!(once, twice, "{action:?} {group}");
                assert!(!once.contains(&NO_GROUP));
            }
        }
    }
}
