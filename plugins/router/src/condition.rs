//! `when`: conditions on the event, each one subject and one test, and the glob matcher.

use serde::Deserialize;
use serde_json::Value;

use crate::event::Event;
use crate::template::{check_header_name, check_pointer};

/// One condition of a route's `when`.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Condition {
    subject: Subject,
    test: Test,
}

/// What a condition looks at.
#[derive(Debug, Clone, PartialEq)]
enum Subject {
    /// `pointer = "/type"`: the JSON body's value there.
    Pointer(String),
    /// `header = "x-github-event"`: the first header of that name (lowercased).
    Header(String),
    /// `form = "email"`: the form field, exactly as sent.
    Form(String),
    /// `event_type = true`: the event type (see `Event::event_type`).
    EventType,
}

/// What a condition checks.
#[derive(Debug, Clone, PartialEq)]
enum Test {
    Equals(Value),
    In(Vec<Value>),
    Glob(String),
    Exists(bool),
}

/// A condition as written; every key optional so the error can say what is missing.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    pointer: Option<String>,
    header: Option<String>,
    form: Option<String>,
    event_type: Option<bool>,
    equals: Option<Value>,
    #[serde(rename = "in")]
    any_of: Option<Vec<Value>>,
    glob: Option<Value>,
    exists: Option<bool>,
}

/// What a subject found in the event.
enum Found<'e> {
    Json(&'e Value),
    Text(&'e str),
}

impl Condition {
    /// Parses `when`: one condition table, or a list of them that must all hold. Errors
    /// start with `when` or `when[i]` (counted from 0).
    pub(crate) fn parse_when(when: &Value) -> Result<Vec<Condition>, String> {
        match when {
            Value::Object(_) => Ok(vec![
                Condition::parse(when).map_err(|e| format!("when: {e}"))?,
            ]),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .map(|(i, item)| Condition::parse(item).map_err(|e| format!("when[{i}]: {e}")))
                .collect(),
            other => Err(format!(
                "when: must be a condition table or a list of them, got {}",
                kind(other)
            )),
        }
    }

    fn parse(value: &Value) -> Result<Condition, String> {
        if !value.is_object() {
            return Err(format!(
                "a condition must be a table such as {{ pointer = \"/type\", equals = \"x\" }}, \
                 got {}",
                kind(value)
            ));
        }
        let spec: Spec = serde_json::from_value(value.clone()).map_err(|e| e.to_string())?;

        let mut subjects = Vec::new();
        if let Some(pointer) = spec.pointer {
            check_pointer(&pointer)?;
            subjects.push(("pointer", Subject::Pointer(pointer)));
        }
        if let Some(header) = spec.header {
            let header = header.trim().to_ascii_lowercase();
            check_header_name(&header)?;
            subjects.push(("header", Subject::Header(header)));
        }
        if let Some(form) = spec.form {
            if form.trim().is_empty() {
                return Err("`form` names no field".to_owned());
            }
            subjects.push(("form", Subject::Form(form)));
        }
        match spec.event_type {
            Some(true) => subjects.push(("event_type", Subject::EventType)),
            Some(false) => {
                return Err(
                    "`event_type = false` means nothing: `event_type = true` makes the event \
                     type the subject"
                        .to_owned(),
                );
            }
            None => {}
        }
        let subject = exactly_one("pointer/header/form/event_type", subjects)?;

        let mut tests = Vec::new();
        if let Some(value) = spec.equals {
            tests.push(("equals", Test::Equals(value)));
        }
        if let Some(values) = spec.any_of {
            if values.is_empty() {
                return Err("`in` needs at least one value".to_owned());
            }
            tests.push(("in", Test::In(values)));
        }
        if let Some(glob) = spec.glob {
            let Value::String(glob) = glob else {
                return Err(format!(
                    "`glob` must be a string such as \"invoice.*\", got {}",
                    kind(&glob)
                ));
            };
            tests.push(("glob", Test::Glob(glob)));
        }
        if let Some(exists) = spec.exists {
            tests.push(("exists", Test::Exists(exists)));
        }
        let test = exactly_one("equals/in/glob/exists", tests)?;

        // Headers, form fields and the event type are text: a number or a list there
        // would never match, so it is refused rather than silently false.
        if !matches!(subject, Subject::Pointer(_)) {
            let values: &[Value] = match &test {
                Test::Equals(value) => std::slice::from_ref(value),
                Test::In(values) => values,
                Test::Glob(_) | Test::Exists(_) => &[],
            };
            if let Some(bad) = values.iter().find(|v| !v.is_string()) {
                return Err(format!(
                    "{} values are text: compare with strings, got {}",
                    subject.noun(),
                    bad
                ));
            }
        }
        Ok(Condition { subject, test })
    }

    /// Whether the condition holds for `event`.
    pub(crate) fn holds(&self, event: &Event) -> bool {
        let found = match &self.subject {
            Subject::Pointer(pointer) => event.pointer(pointer).map(Found::Json),
            Subject::Header(name) => event.header(name).map(Found::Text),
            Subject::Form(field) => event.form_field(field).map(Found::Text),
            Subject::EventType => event.event_type().map(Found::Text),
        };
        match (&self.test, found) {
            (Test::Exists(want), None) => !want,
            // `null` counts as absent: present means "has a value".
            (Test::Exists(want), Some(Found::Json(value))) => *want != value.is_null(),
            (Test::Exists(want), Some(Found::Text(_))) => *want,
            (_, None) => false,
            (Test::Equals(want), Some(found)) => found.equals(want),
            (Test::In(wants), Some(found)) => wants.iter().any(|want| found.equals(want)),
            (Test::Glob(pattern), Some(found)) => found.as_str().is_some_and(|t| glob(pattern, t)),
        }
    }
}

impl Subject {
    fn noun(&self) -> &'static str {
        match self {
            Subject::Pointer(_) => "JSON",
            Subject::Header(_) => "header",
            Subject::Form(_) => "form field",
            Subject::EventType => "event type",
        }
    }
}

impl Found<'_> {
    fn equals(&self, want: &Value) -> bool {
        match self {
            Found::Json(value) => json_equals(value, want),
            Found::Text(text) => want.as_str() == Some(*text),
        }
    }

    fn as_str(&self) -> Option<&str> {
        match self {
            Found::Json(value) => value.as_str(),
            Found::Text(text) => Some(text),
        }
    }
}

/// JSON equality where numbers compare by value (`1` equals `1.0`), as TOML integers and
/// floats are different types but a sender's `1.0` is no different from `1`.
fn json_equals(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || matches!((x.as_f64(), y.as_f64()), (Some(x), Some(y)) if x == y)
        }
        _ => a == b,
    }
}

/// The one item of `found`, or an error naming the choices and what was found.
fn exactly_one<T>(choices: &str, found: Vec<(&str, T)>) -> Result<T, String> {
    let names: Vec<&str> = found.iter().map(|(name, _)| *name).collect();
    match found.into_iter().next() {
        Some((_, item)) if names.len() == 1 => Ok(item),
        _ => Err(format!(
            "a condition needs exactly one of {choices} (found {})",
            if names.is_empty() {
                "none".to_owned()
            } else {
                names.join(" and ")
            }
        )),
    }
}

/// `a string`, `a number`… for error messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a table",
    }
}

/// Whether `text` matches `pattern`, where `*` is any run of characters (`.` and `/`
/// included, possibly none) and `?` exactly one; everything else matches itself, case
/// sensitively. Backtracks only to the last `*`, so it runs in O(pattern × text).
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let pattern: Vec<char> = pattern.chars().collect();
    let text: Vec<char> = text.chars().collect();
    let (mut p, mut t) = (0, 0);
    // The last `*` seen, and the text position it is currently taken to end at.
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some('*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c == '?' || c == text[t] => {
                p += 1;
                t += 1;
            }
            _ => match star {
                // Let the last `*` swallow one more character and try again from there.
                Some((star_p, star_t)) => {
                    star = Some((star_p, star_t + 1));
                    p = star_p + 1;
                    t = star_t + 1;
                }
                None => return false,
            },
        }
    }
    pattern[p..].iter().all(|&c| c == '*')
}
