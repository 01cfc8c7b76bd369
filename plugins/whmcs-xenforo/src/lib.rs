//! Switchyard connector: WHMCS service events → XenForo secondary user groups.
//!
//! WHMCS has no outbound webhooks, so this crate ships a WHMCS hook file,
//! `whmcs/switchyard.php`, that POSTs a small JSON document signed with Standard Webhooks
//! headers on `AfterModuleCreate`, `AfterModuleChangePackage`, `AfterModuleSuspend`,
//! `AfterModuleUnsuspend` and `AfterModuleTerminate` (payload and install steps: this
//! crate's `README.md`). The host checks the signature (scheme `standard-webhooks`) and
//! dedupes on the `webhook-id` header.
//!
//! For each event the connector maps the WHMCS product to a XenForo user group
//! (`group_map`), finds the forum user by the client's email
//! (`GET {xenforo_url}/api/users/find-email`), reads their secondary groups, computes the
//! new set and — only when it differs — writes the whole set at once
//! (`POST {xenforo_url}/api/users/{id}/`, form-encoded), all with `ctx.fetch` inside one
//! `handle` call. It returns no deliveries: a write that XenForo answers with 408/429/5xx
//! (or that times out) fails the whole call with a retry, and the retry reads the user's
//! groups again before writing, so a set computed from an old read is never written later.
//! XenForo *replaces* the secondary groups when `secondary_group_ids` is sent, so the
//! connector always sends the full merged list, never a diff. The same event handled twice
//! ends in the same state.
//!
//! | WHMCS hook | effect on the product's group |
//! |---|---|
//! | `AfterModuleCreate`, `AfterModuleUnsuspend` | added |
//! | `AfterModuleSuspend`, `AfterModuleTerminate` | removed |
//! | `AfterModuleChangePackage` | the new product's group added, every *other* group that appears in `group_map` removed |
//!
//! WHMCS tells a package change only by the *new* product, so the connector cannot know
//! which group the old product granted: WHMCS being the source of truth for entitlements,
//! every other mapped group goes. Groups not in `group_map` (staff, moderators, anything
//! granted by hand) are never touched.
//!
//! Ordering: events (and their retries) are handled in the order they run, not in WHMCS
//! order, so the connector keeps, per WHMCS service, the `occurred_at` of the last event it
//! applied (`ctx.kv()`, key `service/{service_id}`) and skips an event that is older. See
//! "Ordering" in the README for what this does and does not guarantee.
//!
//! Settings (`[connector.settings]`):
//! - `xenforo_url` (required): the board's base URL, e.g. `https://forum.example.com`; the
//!   API is under `{xenforo_url}/api/`. Its origin must be in `allowed_hosts`.
//! - `api_key` (required): a XenForo **super user** API key (`XF-Api-Key`); requests carry
//!   `api_bypass_permissions=1`, so the key's scopes (`user:read`, `user:write`) are what
//!   limit it.
//! - `api_user` (default `1`): the acting user id (`XF-Api-User`).
//! - `group_map` (required): WHMCS product id → XenForo user group id, e.g.
//!   `group_map = { "12" = 5, "13" = 6 }`. A product mapped to `0` grants no group but is
//!   known: a package change *to* it removes every mapped group (a downgrade to a tier
//!   without forum access). Products not in the map are ignored with a log line.
//!
//! Layout, in the order `handle` goes: `event` (the WHMCS payload and what its hook does
//! to the groups; its time in `occurred_at`), `settings`, `history` (the per-service
//! ordering check, kept in kv) and `xenforo` (the REST calls). `tests` drives the whole
//! connector through the SDK's `TestHost`.

mod event;
mod history;
mod occurred_at;
mod settings;
mod xenforo;

use std::collections::BTreeSet;

use switchyard_sdk::{Connector, Ctx, Delivery, Failure, Manifest, Webhook};

use event::{Action, NO_GROUP, ServiceEvent, next_groups};
use history::ServiceHistory;
use settings::Settings;
use xenforo::{XenForo, list};

/// The WHMCS → XenForo connector.
pub struct WhmcsXenforo;

switchyard_sdk::export!(WhmcsXenforo);

impl Connector for WhmcsXenforo {
    fn manifest() -> Manifest {
        Manifest::new("whmcs-xenforo", env!("CARGO_PKG_VERSION"))
            .description(
                "Keeps XenForo secondary user groups in step with WHMCS services \
                 (create/suspend/unsuspend/terminate/change package)",
            )
            .default_scheme("standard-webhooks")
            .required_setting(
                "xenforo_url",
                "The board's base URL (e.g. https://forum.example.com); the API is under /api/",
            )
            .required_setting("api_key", "A XenForo super user API key (XF-Api-Key)")
            .optional_setting(
                "api_user",
                "The acting XenForo user id (XF-Api-User); default 1",
            )
            .required_setting(
                "group_map",
                "WHMCS product id → XenForo user group id, e.g. { \"12\" = 5, \"13\" = 6 }; \
                 0 = a known product that grants no group",
            )
    }

    /// The `webhook-id` header (`svix-id` from Svix senders): unique per hook call, the same
    /// on a resend of that call.
    fn dedupe_key(webhook: &Webhook) -> Option<String> {
        webhook
            .header("webhook-id")
            .or_else(|| webhook.header("svix-id"))
            .map(str::trim)
            .filter(|id| !id.is_empty())
            .map(str::to_owned)
    }

    fn handle(ctx: &Ctx, webhook: &Webhook) -> Result<Vec<Delivery>, Failure> {
        let event = ServiceEvent::parse(webhook)?;
        let settings = Settings::read(ctx)?;

        let Some(&group) = settings.group_map.get(&event.product_id) else {
            ctx.info(format!(
                "{} for service {}: product {} is not in group_map; nothing to do",
                event.hook, event.service_id, event.product_id
            ));
            return Ok(Vec::new());
        };
        if group == NO_GROUP && event.action != Action::Switch {
            ctx.info(format!(
                "{} for service {}: product {} grants no XenForo group; nothing to do",
                event.hook, event.service_id, event.product_id
            ));
            return Ok(Vec::new());
        }

        // Before any call to XenForo: an event older than one already applied to this
        // service (a retry that lost the race, a late resend) must not undo it.
        let history = ServiceHistory::new(ctx, &event);
        if let Some(newer) = history.newer_applied() {
            ctx.info(format!(
                "{} for service {} (occurred_at {}): skipped, older than {} (occurred_at {}, \
                 event {}) already applied to this service",
                event.hook,
                event.service_id,
                event.occurred_at.as_ref().map_or("?", |t| t.text.as_str()),
                newer.event,
                newer.occurred_at,
                newer.event_id
            ));
            return Ok(Vec::new());
        }

        // Read and write in this one call: a failure anywhere is retried as a whole, and
        // the retry starts again from the user's groups as they are then.
        let xenforo = XenForo::new(ctx, &settings);
        let user = xenforo.find_user(&event.email)?;
        let current: BTreeSet<u64> = match user.secondary_group_ids {
            Some(ids) => ids,
            None => xenforo.user_groups(user.user_id)?,
        };
        let next = next_groups(event.action, group, &current, &settings.mapped_groups());

        let who = format!("XenForo user {} ({})", user.user_id, event.email);
        if next == current {
            ctx.info(format!(
                "{} for service {} (product {}): {who} already has secondary groups {}; \
                 nothing to write",
                event.hook,
                event.service_id,
                event.product_id,
                list(&current)
            ));
        } else {
            ctx.info(format!(
                "{} for service {} (product {}): {who} secondary groups {} → {}",
                event.hook,
                event.service_id,
                event.product_id,
                list(&current),
                list(&next)
            ));
            xenforo.write_groups(user.user_id, &next)?;
        }
        history.record_applied(webhook);
        Ok(Vec::new())
    }
}

#[cfg(test)]
mod tests;
