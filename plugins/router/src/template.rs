//! Body templates and header values: JSON and text with `{{…}}` placeholders, parsed once
//! when the settings are read and filled in per event.

use serde_json::{Map, Value};

use crate::event::Event;

/// What a `{{…}}` names.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Placeholder {
    /// `{{/data/object/id}}`: the JSON body's value at this pointer.
    Pointer(String),
    /// `{{payload}}`: the whole JSON body.
    Payload,
    /// `{{header:NAME}}`: the first header of that name (lowercased).
    Header(String),
    /// `{{form:FIELD}}`: the form field, exactly as sent (`data[email]`).
    Form(String),
    /// `{{event.id}}`: the host's event id.
    EventId,
    /// `{{event.type}}`: the event type (see `Event::event_type`).
    EventType,
    /// `{{event.received_at}}`: when the host received it, unix milliseconds.
    ReceivedAt,
    /// `{{setting:NAME}}`: another setting's value, read when the settings are (so a
    /// secret given as `env:`/`file:` stays out of the routes and is masked in the log).
    Setting(String),
}

/// The placeholder forms, for error messages.
const FORMS: &str = "{{/json/pointer}}, {{payload}}, {{header:NAME}}, {{form:FIELD}}, \
                     {{event.id}}, {{event.type}}, {{event.received_at}} or {{setting:NAME}}";

/// One piece of a text with placeholders.
#[derive(Debug, Clone, PartialEq)]
enum Piece {
    Literal(String),
    Placeholder(Placeholder),
}

/// A string setting with placeholders, filled in as text.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Text(Vec<Piece>);

/// A body template: JSON whose strings may hold placeholders.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Template {
    /// A string that is exactly one placeholder: replaced by the value, keeping its JSON
    /// type.
    Value(Placeholder),
    /// Any other string: placeholders filled in as text.
    Text(Text),
    Array(Vec<Template>),
    /// Keys are kept as written.
    Object(Vec<(String, Template)>),
    /// A number, boolean or null, kept as is.
    Literal(Value),
}

/// Looks another setting up, for `{{setting:NAME}}`.
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

impl Text {
    /// Parses `text`; `at` names where it is for errors (`headers.authorization`).
    pub(crate) fn parse(text: &str, at: &str, settings: Lookup) -> Result<Text, String> {
        let mut pieces = Vec::new();
        let mut rest = text;
        while let Some(start) = rest.find("{{") {
            let Some(len) = rest[start + 2..].find("}}") else {
                return Err(format!(
                    "{at}: `{{{{` without a closing `}}}}` in {text:?} (placeholders are {FORMS})"
                ));
            };
            if start > 0 {
                pieces.push(Piece::Literal(rest[..start].to_owned()));
            }
            let inner = &rest[start + 2..start + 2 + len];
            pieces.push(placeholder(inner, at, settings)?);
            rest = &rest[start + 2 + len + 2..];
        }
        if !rest.is_empty() {
            pieces.push(Piece::Literal(rest.to_owned()));
        }
        Ok(Text(pieces))
    }

    /// The text for this event: strings as they are, other JSON values as JSON text,
    /// missing values as nothing.
    pub(crate) fn render(&self, event: &Event) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Literal(text) => out.push_str(text),
                Piece::Placeholder(p) => match resolve(p, event) {
                    Value::Null => {}
                    Value::String(text) => out.push_str(&text),
                    other => out.push_str(&other.to_string()),
                },
            }
        }
        out
    }

    /// The single placeholder this text is made of, if that is all it is.
    fn single(&self) -> Option<&Placeholder> {
        match self.0.as_slice() {
            [Piece::Placeholder(p)] => Some(p),
            _ => None,
        }
    }
}

impl Template {
    /// Parses a template; `at` names where it is for errors (`template`).
    pub(crate) fn parse(value: &Value, at: &str, settings: Lookup) -> Result<Template, String> {
        Ok(match value {
            Value::String(text) => {
                let text = Text::parse(text, at, settings)?;
                match text.single() {
                    Some(p) => Template::Value(p.clone()),
                    None => Template::Text(text),
                }
            }
            Value::Array(items) => Template::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, item)| Template::parse(item, &format!("{at}[{i}]"), settings))
                    .collect::<Result<_, _>>()?,
            ),
            Value::Object(fields) => Template::Object(
                fields
                    .iter()
                    .map(|(key, item)| {
                        let at = format!("{at}.{key}");
                        Ok((key.clone(), Template::parse(item, &at, settings)?))
                    })
                    .collect::<Result<_, String>>()?,
            ),
            other => Template::Literal(other.clone()),
        })
    }

    /// The JSON body for this event.
    pub(crate) fn render(&self, event: &Event) -> Value {
        match self {
            Template::Value(p) => resolve(p, event),
            Template::Text(text) => Value::String(text.render(event)),
            Template::Array(items) => {
                Value::Array(items.iter().map(|item| item.render(event)).collect())
            }
            Template::Object(fields) => Value::Object(
                fields
                    .iter()
                    .map(|(key, item)| (key.clone(), item.render(event)))
                    .collect::<Map<_, _>>(),
            ),
            Template::Literal(value) => value.clone(),
        }
    }
}

/// Parses what is between `{{` and `}}` (spaces around it are ignored).
fn placeholder(inner: &str, at: &str, settings: Lookup) -> Result<Piece, String> {
    let inner = inner.trim();
    let named = |prefix: &str| {
        inner
            .strip_prefix(prefix)
            .map(str::trim)
            .filter(|name| !name.is_empty())
    };
    let placeholder = if inner.starts_with('/') {
        check_pointer(inner).map_err(|e| format!("{at}: {{{{{inner}}}}}: {e}"))?;
        Placeholder::Pointer(inner.to_owned())
    } else if inner == "payload" {
        Placeholder::Payload
    } else if inner == "event.id" {
        Placeholder::EventId
    } else if inner == "event.type" {
        Placeholder::EventType
    } else if inner == "event.received_at" {
        Placeholder::ReceivedAt
    } else if let Some(name) = named("header:") {
        check_header_name(name).map_err(|e| format!("{at}: {{{{{inner}}}}}: {e}"))?;
        Placeholder::Header(name.to_ascii_lowercase())
    } else if let Some(field) = named("form:") {
        Placeholder::Form(field.to_owned())
    } else if let Some(name) = named("setting:") {
        let value = settings(name).ok_or_else(|| {
            format!("{at}: {{{{{inner}}}}}: there is no setting `{name}` in [connector.settings]")
        })?;
        Placeholder::Setting(value)
    } else {
        return Err(format!(
            "{at}: unknown placeholder {{{{{inner}}}}} (placeholders are {FORMS})"
        ));
    };
    Ok(Piece::Placeholder(placeholder))
}

/// The value a placeholder stands for in this event; `null` when it is missing.
fn resolve(placeholder: &Placeholder, event: &Event) -> Value {
    let text = |value: Option<&str>| value.map_or(Value::Null, |v| Value::String(v.to_owned()));
    match placeholder {
        Placeholder::Pointer(pointer) => event.pointer(pointer).cloned().unwrap_or(Value::Null),
        Placeholder::Payload => event.json.clone().unwrap_or(Value::Null),
        Placeholder::Header(name) => text(event.header(name)),
        Placeholder::Form(field) => text(event.form_field(field)),
        Placeholder::EventId => Value::String(event.webhook.id.clone()),
        Placeholder::EventType => text(event.event_type()),
        Placeholder::ReceivedAt => Value::from(event.webhook.received_at),
        Placeholder::Setting(value) => Value::String(value.clone()),
    }
}

/// A JSON pointer (RFC 6901): `/` then reference tokens separated by `/`, where `~` is
/// only ever `~0` (a `~`) or `~1` (a `/`).
pub(crate) fn check_pointer(pointer: &str) -> Result<(), String> {
    if !pointer.starts_with('/') {
        return Err(format!(
            "{pointer:?} is not a JSON pointer: it must start with `/` (e.g. \"/type\", \
             \"/data/object/id\")"
        ));
    }
    let mut chars = pointer.chars();
    while let Some(c) = chars.next() {
        if c == '~' && !matches!(chars.next(), Some('0' | '1')) {
            return Err(format!(
                "{pointer:?} is not a JSON pointer: `~` must be written `~0`, and a `/` inside \
                 a key `~1`"
            ));
        }
    }
    Ok(())
}

/// An HTTP header name: one or more token characters (RFC 9110).
pub(crate) fn check_header_name(name: &str) -> Result<(), String> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(format!("{name:?} is not a valid header name"));
    }
    Ok(())
}
