//! Switchyard connector that routes each event to destinations chosen by rules written in
//! `[connector.settings]`: fan-out and filters without writing Rust.
//!
//! The operator lists **routes**, tried in order. A route whose conditions (`when`) all
//! hold sends the event to each of its destinations (`to`): one delivery per destination,
//! each delivered, retried and keyed (`Idempotency-Key`) by the host on its own. The body
//! is forwarded unchanged with its `content-type`, or built from a JSON **template** with
//! placeholders taken from the event. Every matching route adds its deliveries, unless one
//! says `stop = true`; an event no route matches is dropped (it succeeds with a log line)
//! or, with `no_match = "reject"`, rejected.
//!
//! ```toml
//! [connector.settings]
//! no_match = "drop"                      # or "reject"
//!
//! [[connector.settings.routes]]
//! name = "invoices"                      # required, unique: errors and logs name it
//! when = { event_type = true, glob = "invoice.*" }
//! to = ["https://billing.example.com/stripe"]
//! template = { invoice = "{{/data/object/id}}", paid = "{{/data/object/amount_paid}}" }
//!
//! [[connector.settings.routes]]
//! name = "audit"                         # no `when`: every event
//! to = ["https://audit.example.com/events", "destination:audit"]
//! ```
//!
//! Route keys:
//! - `name` (required): unique; errors and log lines name the route by it.
//! - `when`: one condition table, or a list of them that must all hold; absent, every
//!   event. A condition has exactly one **subject** — `pointer = "/json/pointer"` (the
//!   JSON body), `header = "NAME"`, `form = "FIELD"` (a form-encoded body's field, key as
//!   sent: `data[email]`) or `event_type = true` — and exactly one **test** —
//!   `equals = VALUE`, `in = [VALUES]`, `glob = "PATTERN"` (`*` any run of characters, `?`
//!   one) or `exists = true|false`. See [`condition`] for the exact rules.
//! - `to` (required): the destinations, each passed through as the delivery URL
//!   (`https://…` now; `destination:NAME` once the host resolves named destinations).
//! - `method`: `POST` (default), `PUT`, `PATCH`, `DELETE` or `GET`.
//! - `headers`: a table of extra headers; values may hold placeholders.
//! - `template`: the body as JSON. A string that is exactly one placeholder is replaced by
//!   the value keeping its JSON type; placeholders inside longer text are filled in as
//!   text. Placeholders: `{{/json/pointer}}`, `{{payload}}` (the whole JSON body),
//!   `{{header:NAME}}`, `{{form:FIELD}}`, `{{event.id}}`, `{{event.type}}`,
//!   `{{event.received_at}}` (unix ms) and `{{setting:NAME}}` (another setting, so a
//!   secret can be an `env:` reference). A missing value is `null`, or nothing in text.
//! - `stop = true`: no later route is tried once this one matched.
//!
//! The **event type** is the JSON body's top-level `type`, else the form field `type`,
//! else the `x-github-event` header, else `x-event-type`.
//!
//! Settings are parsed and checked in full on every `handle` (the SDK's `manifest` cannot
//! read them). A problem is a [`Failure::retry`] whose message names the route
//! (`route "invoices": when[1]: a condition needs exactly one of …`): the configuration is
//! wrong, not the event, so events wait until the operator fixes it.
//!
//! The dedupe key is the `webhook-id` header (Standard Webhooks), else `svix-id`, else
//! `x-github-delivery`, else the top-level `id` of a JSON body with `"object": "event"`
//! (Stripe's `evt_…`); settings cannot change it, as `dedupe_key` has no access to them.
//!
//! # Layout
//! - `settings`: the settings parsed into typed routes, and each route's deliveries.
//! - `condition`: `when`, and the glob matcher.
//! - `template`: placeholders in templates and header values.
//! - `event`: the event as the routes read it (JSON, form, event type) and the dedupe key.

mod condition;
mod event;
mod settings;
mod template;

use switchyard_sdk::{Connector, Ctx, Delivery, Failure, Manifest, Webhook};

use crate::event::Event;
use crate::settings::{NoMatch, Settings};

/// The router connector.
pub struct Router;

switchyard_sdk::export!(Router);

impl Connector for Router {
    fn manifest() -> Manifest {
        Manifest::new("router", env!("CARGO_PKG_VERSION"))
            .description(
                "Routes each event to one or more destinations by rules in [connector.settings]: \
                 conditions on JSON pointers, headers, form fields or the event type; fan-out; \
                 JSON body templates",
            )
            .default_scheme("standard-webhooks")
            .required_setting(
                "routes",
                "The routes, tried in order ([[connector.settings.routes]]): name (unique), \
                 when (conditions), to (destination URLs), and optionally method, headers, \
                 template, stop. See the connector's README",
            )
            .optional_setting(
                "no_match",
                "\"drop\" (default: the event succeeds with no deliveries) or \"reject\" \
                 (dead at once) when no route matches",
            )
    }

    /// `webhook-id`, `svix-id` or `x-github-delivery`, else a Stripe-style event's `/id`.
    fn dedupe_key(webhook: &Webhook) -> Option<String> {
        event::dedupe_key(webhook)
    }

    /// Every route read and checked as `handle` would, so a wrong config is refused when
    /// it loads (the previous one keeps serving) instead of found by the first event.
    fn check_settings(ctx: &Ctx) -> Result<(), String> {
        Settings::read(ctx).map(drop).map_err(|e| e.0)
    }

    fn handle(ctx: &Ctx, webhook: &Webhook) -> Result<Vec<Delivery>, Failure> {
        // Checked at load too (`check_settings`); a host before WIT 0.1.1 does not ask.
        let settings = Settings::read(ctx).map_err(|e| e.into_failure())?;
        let event = Event::new(webhook);
        let mut matched = Vec::new();
        let mut deliveries = Vec::new();
        for route in &settings.routes {
            if !route.matches(&event) {
                continue;
            }
            deliveries.extend(route.deliveries(&event));
            matched.push(format!("{:?}", route.name));
            if route.stop {
                break;
            }
        }
        if matched.is_empty() {
            return match settings.no_match {
                NoMatch::Drop => {
                    ctx.info(format!(
                        "{}: no route matched; dropped (no_match = \"drop\")",
                        event.describe()
                    ));
                    Ok(Vec::new())
                }
                NoMatch::Reject => Err(Failure::reject(format!(
                    "{}: no route matched (no_match = \"reject\")",
                    event.describe()
                ))),
            };
        }
        ctx.info(format!(
            "{}: {} {} → {} deliver{}",
            event.describe(),
            if matched.len() == 1 {
                "route"
            } else {
                "routes"
            },
            matched.join(", "),
            deliveries.len(),
            if deliveries.len() == 1 { "y" } else { "ies" },
        ));
        Ok(deliveries)
    }
}

#[cfg(test)]
mod tests;
