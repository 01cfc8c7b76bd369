//! Form-encoded bodies with PHP-style nested keys (`data[merges][FNAME]`), as Mailchimp
//! and PHP applications such as WHMCS send them.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;

use crate::Failure;
use crate::webhook::form_urlencoded_pairs;

/// A parsed `application/x-www-form-urlencoded` body.
///
/// Two views of the same data:
/// - flat: [`get`](Form::get) / [`get_all`](Form::get_all) look a key up exactly as sent,
///   brackets included (`form.get("data[merges][FNAME]")`);
/// - nested, as PHP builds `$_POST`: [`field`](Form::field) walks
///   `data` → `merges` → `FNAME`, and [`deserialize`](Form::deserialize) maps the tree onto
///   a serde type. `a[]=x&a[]=y` becomes a list; every leaf is a string.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Form {
    pairs: Vec<(String, String)>,
    root: BTreeMap<String, FormValue>,
}

/// One node of a [`Form`]'s nested view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FormValue {
    /// A leaf value.
    Text(String),
    /// Built by repeated empty brackets: `ids[]=1&ids[]=2`.
    List(Vec<FormValue>),
    /// Built by named brackets: `data[email]=…&data[id]=…`.
    Map(BTreeMap<String, FormValue>),
}

impl Form {
    /// Parses form-encoded bytes. Never fails on content (like PHP, malformed escapes are
    /// kept literally); the `Result` is for symmetry with the other body helpers.
    pub fn parse(body: &[u8]) -> Result<Form, Failure> {
        let pairs = form_urlencoded_pairs(body);
        let mut root = BTreeMap::new();
        for (key, value) in &pairs {
            insert_pair(&mut root, key, value.clone());
        }
        Ok(Form { pairs, root })
    }

    /// The value of `key` exactly as sent (`"type"`, `"data[email]"`); the last one when
    /// the key repeats, as PHP does.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.pairs
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of `key` exactly as sent, in order (`"ids[]"`).
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.pairs
            .iter()
            .filter(move |(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The decoded pairs in the order received.
    pub fn pairs(&self) -> &[(String, String)] {
        &self.pairs
    }

    /// A top-level field of the nested view (`form.field("data")`).
    pub fn field(&self, name: &str) -> Option<&FormValue> {
        self.root.get(name)
    }

    /// Walks the nested view: `form.path(&["data", "merges", "FNAME"])`. List items are
    /// addressed by their index (`"0"`).
    pub fn path(&self, path: &[&str]) -> Option<&FormValue> {
        let (first, rest) = path.split_first()?;
        rest.iter()
            .try_fold(self.root.get(*first)?, |node, key| node.get(key))
    }

    /// The nested view as a JSON object (every leaf a string).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::Value::Object(
            self.root
                .iter()
                .map(|(k, v)| (k.clone(), v.to_json()))
                .collect(),
        )
    }

    /// Maps the nested view onto `T`; leaves are strings, so numeric fields need to be
    /// declared as `String` (or parsed with `serde_with`-style helpers). A mismatch is
    /// rejected.
    pub fn deserialize<T: DeserializeOwned>(&self) -> Result<T, Failure> {
        serde_json::from_value(self.to_json())
            .map_err(|e| Failure::reject(format!("form body has an unexpected shape: {e}")))
    }
}

impl FormValue {
    /// The leaf text, if this is a leaf.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FormValue::Text(s) => Some(s),
            _ => None,
        }
    }

    /// The child named `key` (a map key, or a list index such as `"0"`).
    pub fn get(&self, key: &str) -> Option<&FormValue> {
        match self {
            FormValue::Map(map) => map.get(key),
            FormValue::List(items) => key.parse::<usize>().ok().and_then(|i| items.get(i)),
            FormValue::Text(_) => None,
        }
    }

    /// The items, if this is a list.
    pub fn as_list(&self) -> Option<&[FormValue]> {
        match self {
            FormValue::List(items) => Some(items),
            _ => None,
        }
    }

    /// The entries, if this is a map.
    pub fn as_map(&self) -> Option<&BTreeMap<String, FormValue>> {
        match self {
            FormValue::Map(map) => Some(map),
            _ => None,
        }
    }

    /// This node as JSON (strings, arrays and objects).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            FormValue::Text(s) => serde_json::Value::String(s.clone()),
            FormValue::List(items) => items.iter().map(FormValue::to_json).collect(),
            FormValue::Map(map) => serde_json::Value::Object(
                map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect(),
            ),
        }
    }
}

/// Splits `base[a][b][]` into `("base", ["a", "b", ""])`. A key without brackets, or with
/// unbalanced ones, is a plain key (`None`). Text after the last `]` is ignored, as PHP does.
fn split_key(key: &str) -> Option<(&str, Vec<&str>)> {
    let open = key.find('[')?;
    let base = &key[..open];
    if base.is_empty() {
        return None;
    }
    let mut segments = Vec::new();
    let mut rest = &key[open..];
    while let Some(after_open) = rest.strip_prefix('[') {
        let close = after_open.find(']')?;
        segments.push(&after_open[..close]);
        rest = &after_open[close + 1..];
    }
    Some((base, segments))
}

fn insert_pair(root: &mut BTreeMap<String, FormValue>, key: &str, value: String) {
    match split_key(key) {
        None => {
            root.insert(key.to_owned(), FormValue::Text(value));
        }
        Some((base, segments)) => {
            let slot = root
                .entry(base.to_owned())
                .or_insert_with(|| FormValue::Text(String::new()));
            insert_path(slot, &segments, value);
        }
    }
}

/// Stores `value` under `path` below `slot`, turning leaves into lists or maps as needed;
/// a later pair wins over an earlier one at the same place (PHP semantics).
fn insert_path(slot: &mut FormValue, path: &[&str], value: String) {
    let Some((key, rest)) = path.split_first() else {
        *slot = FormValue::Text(value);
        return;
    };
    let child = if key.is_empty() {
        // `[]`: append a new item.
        match slot {
            FormValue::List(items) => {
                items.push(FormValue::Text(String::new()));
                items.last_mut()
            }
            FormValue::Map(map) => {
                let next = map
                    .keys()
                    .filter_map(|k| k.parse::<usize>().ok())
                    .max()
                    .map_or(0, |max| max + 1);
                Some(
                    map.entry(next.to_string())
                        .or_insert_with(|| FormValue::Text(String::new())),
                )
            }
            FormValue::Text(_) => {
                *slot = FormValue::List(vec![FormValue::Text(String::new())]);
                match slot {
                    FormValue::List(items) => items.last_mut(),
                    _ => None,
                }
            }
        }
    } else {
        // `[name]`: a map entry; an existing list becomes a map keyed by index.
        let map = match std::mem::replace(slot, FormValue::Text(String::new())) {
            FormValue::Map(map) => map,
            FormValue::List(items) => items
                .into_iter()
                .enumerate()
                .map(|(i, v)| (i.to_string(), v))
                .collect(),
            FormValue::Text(_) => BTreeMap::new(),
        };
        *slot = FormValue::Map(map);
        match slot {
            FormValue::Map(map) => Some(
                map.entry((*key).to_owned())
                    .or_insert_with(|| FormValue::Text(String::new())),
            ),
            _ => None,
        }
    };
    if let Some(child) = child {
        insert_path(child, rest, value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    const MAILCHIMP: &str = "type=subscribe&fired_at=2009-03-26+21%3A35%3A57\
        &data%5Bid%5D=8a25ff1d98&data%5Blist_id%5D=a6b5da1054\
        &data[email]=api%40mailchimp.com&data[email_type]=html\
        &data[merges][EMAIL]=api%40mailchimp.com&data[merges][FNAME]=Mailchimp\
        &data[merges][LNAME]=API&data[merges][INTERESTS]=Group1%2CGroup2\
        &data[ip_opt]=10.20.10.30&data[ip_signup]=10.20.10.30";

    #[test]
    fn mailchimp_nested_keys() {
        let form = Form::parse(MAILCHIMP.as_bytes()).unwrap();
        // Flat lookups, whether or not the sender percent-encoded the brackets.
        assert_eq!(form.get("type"), Some("subscribe"));
        assert_eq!(form.get("fired_at"), Some("2009-03-26 21:35:57"));
        assert_eq!(form.get("data[id]"), Some("8a25ff1d98"));
        assert_eq!(form.get("data[email]"), Some("api@mailchimp.com"));
        assert_eq!(form.get("data[merges][FNAME]"), Some("Mailchimp"));
        assert_eq!(form.get("data[merges][INTERESTS]"), Some("Group1,Group2"));

        // Nested view.
        let data = form.field("data").unwrap();
        assert_eq!(
            data.get("list_id").and_then(FormValue::as_str),
            Some("a6b5da1054")
        );
        assert_eq!(
            form.path(&["data", "merges", "LNAME"])
                .and_then(FormValue::as_str),
            Some("API")
        );
        assert_eq!(form.path(&["data", "nope"]), None);
        assert_eq!(
            form.to_json()["data"]["merges"],
            json!({"EMAIL": "api@mailchimp.com", "FNAME": "Mailchimp", "LNAME": "API",
                   "INTERESTS": "Group1,Group2"})
        );

        #[derive(Deserialize)]
        struct Event {
            r#type: String,
            data: Data,
        }
        #[derive(Deserialize)]
        struct Data {
            email: String,
            merges: std::collections::HashMap<String, String>,
        }
        let event: Event = form.deserialize().unwrap();
        assert_eq!(event.r#type, "subscribe");
        assert_eq!(event.data.email, "api@mailchimp.com");
        assert_eq!(event.data.merges["FNAME"], "Mailchimp");
    }

    #[test]
    fn lists_and_deep_indices() {
        let form =
            Form::parse(b"ids[]=1&ids[]=2&g[0][id]=7&g[0][groups]=A&g[1][id]=8&name=x&name=y")
                .unwrap();
        assert_eq!(form.get_all("ids[]").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(form.get("name"), Some("y"), "last value wins");
        assert_eq!(form.to_json()["ids"], json!(["1", "2"]));
        assert_eq!(
            form.to_json()["g"],
            json!({"0": {"id": "7", "groups": "A"}, "1": {"id": "8"}})
        );
        assert_eq!(
            form.path(&["g", "1", "id"]).and_then(FormValue::as_str),
            Some("8")
        );
        assert_eq!(
            form.path(&["ids", "1"]).and_then(FormValue::as_str),
            Some("2")
        );
    }

    #[test]
    fn odd_keys_stay_flat_or_follow_php() {
        let form = Form::parse(b"a[b=1&[x]=2&c[d]tail=3&e=4&e[f]=5&h[k][]=6&h[k][]=7").unwrap();
        assert_eq!(form.field("a[b").and_then(FormValue::as_str), Some("1"));
        assert_eq!(form.field("[x]").and_then(FormValue::as_str), Some("2"));
        assert_eq!(
            form.path(&["c", "d"]).and_then(FormValue::as_str),
            Some("3")
        );
        // A later nested key replaces an earlier leaf of the same name.
        assert_eq!(
            form.path(&["e", "f"]).and_then(FormValue::as_str),
            Some("5")
        );
        assert_eq!(form.to_json()["h"], json!({"k": ["6", "7"]}));
        assert_eq!(form.get("e"), Some("4"));
    }

    #[test]
    fn empty_body_is_an_empty_form() {
        let form = Form::parse(b"").unwrap();
        assert!(form.pairs().is_empty());
        assert_eq!(form.to_json(), json!({}));
    }
}
