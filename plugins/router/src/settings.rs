//! `[connector.settings]`: the routes and `no_match`, parsed into typed values and checked
//! as a whole before any event is routed.

use std::collections::BTreeSet;

use serde::Deserialize;
use serde_json::{Map, Value};
use switchyard_sdk::{Ctx, Delivery, Failure};

use crate::condition::{Condition, kind};
use crate::event::Event;
use crate::template::{Lookup, Template, Text, check_header_name};

/// The methods a route may send with.
const METHODS: [&str; 5] = ["POST", "PUT", "PATCH", "DELETE", "GET"];

/// Headers a route may not set: the host and its HTTP client own them.
const RESERVED_HEADERS: [&str; 6] = [
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "idempotency-key",
    "traceparent",
];

/// The connector's settings, all checked.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) routes: Vec<Route>,
    pub(crate) no_match: NoMatch,
}

/// What happens to an event no route matches (`no_match`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NoMatch {
    /// It succeeds with no deliveries, and a log line says so.
    Drop,
    /// It is rejected (dead at once), with a message saying so.
    Reject,
}

/// One route: when it applies, where the event goes, and how.
#[derive(Debug)]
pub(crate) struct Route {
    pub(crate) name: String,
    /// All must hold; none: every event.
    pub(crate) when: Vec<Condition>,
    /// Destination URLs, passed through as each delivery's URL.
    pub(crate) to: Vec<String>,
    /// Upper case.
    pub(crate) method: String,
    /// Names lowercase, in name order.
    pub(crate) headers: Vec<(String, Text)>,
    /// `None`: the body is forwarded unchanged.
    pub(crate) template: Option<Template>,
    /// No later route is tried once this one matched.
    pub(crate) stop: bool,
}

/// A route as written. Serde only refuses unknown keys: each value is checked by hand, so
/// its error names the key (`name` is read first, so that every error can name the route).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteSpec {
    #[allow(dead_code)] // read before, from the table itself
    name: Value,
    when: Option<Value>,
    to: Option<Value>,
    method: Option<Value>,
    headers: Option<Value>,
    template: Option<Value>,
    stop: Option<Value>,
}

/// A settings problem: the whole message, naming the setting and the route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct SettingsError(pub(crate) String);

impl SettingsError {
    /// A retry, not a rejection: the configuration is wrong, not the event, so the event
    /// waits (with backoff) for the operator to fix `[connector.settings]`.
    pub(crate) fn into_failure(self) -> Failure {
        Failure::retry(format!(
            "invalid [connector.settings]: {} (the event is retried until the settings are \
             fixed)",
            self.0
        ))
    }
}

impl Settings {
    /// Reads and checks every setting.
    pub(crate) fn read(ctx: &Ctx) -> Result<Settings, SettingsError> {
        Settings::parse(&|key| ctx.setting(key))
    }

    /// [`Settings::read`] over any lookup (as the host gives them: strings as-is, other
    /// TOML values as JSON text).
    pub(crate) fn parse(setting: Lookup) -> Result<Settings, SettingsError> {
        let no_match = match setting("no_match").as_deref().map(str::trim) {
            None | Some("drop") => NoMatch::Drop,
            Some("reject") => NoMatch::Reject,
            Some(other) => {
                return Err(SettingsError(format!(
                    "setting `no_match` must be \"drop\" or \"reject\", got {other:?}"
                )));
            }
        };
        let Some(raw) = setting("routes") else {
            return Err(SettingsError(
                "setting `routes` is not set: add at least one [[connector.settings.routes]] \
                 table"
                    .to_owned(),
            ));
        };
        let routes = match serde_json::from_str::<Value>(&raw) {
            Ok(Value::Array(routes)) => routes,
            _ => {
                return Err(SettingsError(
                    "setting `routes` must be a list of route tables \
                     ([[connector.settings.routes]])"
                        .to_owned(),
                ));
            }
        };
        if routes.is_empty() {
            return Err(SettingsError("setting `routes` has no routes".to_owned()));
        }
        let mut names = BTreeSet::new();
        let mut parsed = Vec::with_capacity(routes.len());
        for (index, route) in routes.iter().enumerate() {
            let route = Route::parse(index, route, setting).map_err(SettingsError)?;
            if !names.insert(route.name.clone()) {
                return Err(SettingsError(format!(
                    "route {:?}: the name is used by an earlier route; names must be unique",
                    route.name
                )));
            }
            parsed.push(route);
        }
        Ok(Settings {
            routes: parsed,
            no_match,
        })
    }
}

impl Route {
    /// Parses `routes[index]`; every error starts with `route "NAME": ` (or `routes[i]: `
    /// while there is no name to give).
    fn parse(index: usize, value: &Value, setting: Lookup) -> Result<Route, String> {
        let Value::Object(table) = value else {
            return Err(format!(
                "routes[{index}]: a route must be a table, got {}",
                kind(value)
            ));
        };
        let name = route_name(table).map_err(|e| format!("routes[{index}]: {e}"))?;
        let at = |e: String| format!("route {name:?}: {e}");
        let spec: RouteSpec =
            serde_json::from_value(value.clone()).map_err(|e| at(e.to_string()))?;
        let when = match &spec.when {
            None => Vec::new(),
            Some(when) => Condition::parse_when(when).map_err(at)?,
        };
        let to = destinations(spec.to.as_ref()).map_err(at)?;
        let method = method(spec.method).map_err(at)?;
        let stop = match spec.stop {
            None => false,
            Some(Value::Bool(stop)) => stop,
            Some(other) => {
                return Err(at(format!(
                    "stop: must be true or false, got {}",
                    kind(&other)
                )));
            }
        };
        let headers = headers(spec.headers, setting).map_err(at)?;
        let template = spec
            .template
            .as_ref()
            .map(|t| Template::parse(t, "template", setting))
            .transpose()
            .map_err(at)?;
        Ok(Route {
            name,
            when,
            to,
            method,
            headers,
            template,
            stop,
        })
    }

    /// Whether every condition holds.
    pub(crate) fn matches(&self, event: &Event) -> bool {
        self.when.iter().all(|condition| condition.holds(event))
    }

    /// One delivery per destination, in the order of `to`.
    pub(crate) fn deliveries(&self, event: &Event) -> Vec<Delivery> {
        let webhook = event.webhook;
        let (body, content_type) = match &self.template {
            None => (
                webhook.body.clone(),
                webhook.header("content-type").map(str::to_owned),
            ),
            Some(template) => {
                // A `Value` always serializes (its maps have string keys).
                let body = serde_json::to_vec(&template.render(event)).unwrap_or_default();
                (body, Some("application/json".to_owned()))
            }
        };
        let headers: Vec<(String, String)> = self
            .headers
            .iter()
            .map(|(name, text)| (name.clone(), header_value(&text.render(event))))
            .collect();
        self.to
            .iter()
            .map(|url| {
                let mut delivery = Delivery::new(self.method.clone(), url.clone());
                let own_type = headers.iter().any(|(name, _)| name == "content-type");
                if let (Some(value), false) = (&content_type, own_type) {
                    delivery = delivery.header("content-type", value.clone());
                }
                for (name, value) in &headers {
                    delivery = delivery.header(name.clone(), value.clone());
                }
                delivery.body(body.clone())
            })
            .collect()
    }
}

/// `method`: one of [`METHODS`], in any case; `POST` when absent.
fn method(method: Option<Value>) -> Result<String, String> {
    match method {
        None => Ok("POST".to_owned()),
        Some(Value::String(method)) => {
            let upper = method.trim().to_ascii_uppercase();
            if METHODS.contains(&upper.as_str()) {
                Ok(upper)
            } else {
                Err(format!(
                    "method: {method:?} is not one of {}",
                    METHODS.join(", ")
                ))
            }
        }
        Some(other) => Err(format!("method: must be a string, got {}", kind(&other))),
    }
}

/// `headers`: a table of valid header names, none of the host's, none twice (names
/// ignore case), to strings with placeholders.
fn headers(table: Option<Value>, setting: Lookup) -> Result<Vec<(String, Text)>, String> {
    let table = match table {
        None => Map::new(),
        Some(Value::Object(table)) => table,
        Some(other) => {
            return Err(format!(
                "headers: must be a table of header name = value, got {}",
                kind(&other)
            ));
        }
    };
    let mut headers: Vec<(String, Text)> = Vec::new();
    for (header, value) in table {
        let lower = header.trim().to_ascii_lowercase();
        check_header_name(&lower).map_err(|e| format!("headers: {e}"))?;
        if RESERVED_HEADERS.contains(&lower.as_str()) {
            return Err(format!(
                "headers: `{lower}` is set by the host and cannot be set by a route"
            ));
        }
        if headers.iter().any(|(seen, _)| *seen == lower) {
            return Err(format!(
                "headers: `{lower}` is given twice (header names ignore case)"
            ));
        }
        let Value::String(value) = value else {
            return Err(format!(
                "headers.{lower}: must be a string, got {}",
                kind(&value)
            ));
        };
        let text = Text::parse(&value, &format!("headers.{lower}"), setting)?;
        headers.push((lower, text));
    }
    Ok(headers)
}

/// The route's `name`: a non-blank string without control characters.
fn route_name(table: &Map<String, Value>) -> Result<String, String> {
    match table.get("name") {
        None => Err("a route needs a `name`".to_owned()),
        Some(Value::String(name)) if name.trim().is_empty() => {
            Err("`name` must not be blank".to_owned())
        }
        Some(Value::String(name)) if name.chars().any(char::is_control) => {
            Err(format!("`name` {name:?} contains control characters"))
        }
        Some(Value::String(name)) => Ok(name.trim().to_owned()),
        Some(other) => Err(format!("`name` must be a string, got {}", kind(other))),
    }
}

/// `to`: one destination or a list of them; each non-blank, without spaces, and not
/// repeated. Passed through as written otherwise: an `http(s)://` URL now, a
/// `destination:NAME` once the host resolves named destinations.
fn destinations(to: Option<&Value>) -> Result<Vec<String>, String> {
    let items: Vec<&Value> = match to {
        None => return Err("a route needs `to`, the destination(s)".to_owned()),
        Some(Value::Array(items)) => items.iter().collect(),
        Some(one @ Value::String(_)) => vec![one],
        Some(other) => {
            return Err(format!(
                "to: must be a list of destination URLs, got {}",
                kind(other)
            ));
        }
    };
    if items.is_empty() {
        return Err("to: needs at least one destination".to_owned());
    }
    let mut to = Vec::with_capacity(items.len());
    for (i, item) in items.into_iter().enumerate() {
        let Value::String(url) = item else {
            return Err(format!(
                "to[{i}]: must be a destination URL (a string), got {}",
                kind(item)
            ));
        };
        let url = url.trim();
        if url.is_empty() {
            return Err(format!("to[{i}]: is blank"));
        }
        if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!(
                "to[{i}]: {url:?} contains spaces or control characters"
            ));
        }
        if to.iter().any(|seen| seen == url) {
            return Err(format!("to[{i}]: {url:?} is listed twice"));
        }
        to.push(url.to_owned());
    }
    Ok(to)
}

/// A filled-in header value made safe to send: line breaks and other control characters
/// (which a payload value may hold) become spaces.
fn header_value(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}
