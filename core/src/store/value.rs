//! How the index lays out its keys and values (the trees are in the sled engine's module docs).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::{Location, Result};
use crate::record::EventRecord;

/// A `dedupe` value: the event that claimed the key, and when it was received.
#[derive(Serialize, Deserialize)]
pub struct DedupeEntry {
    pub event_id: String,
    pub at: u64,
}

/// Whether a `dedupe` value is the claim of event `id` (a later event may hold the key now).
pub fn claimed_by(entry: &[u8], id: &str) -> bool {
    serde_json::from_slice::<DedupeEntry>(entry).is_ok_and(|e| e.event_id == id)
}

/// A delivery's key: sorts by event, then index.
pub fn delivery_key(event_id: &str, index: u32) -> String {
    format!("{event_id}/{index:05}")
}

/// `{connector}\0{key}`: the key of a connector's entry in `dedupe` and `kv`.
pub fn kv_key(connector: &str, key: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(connector.len() + 1 + key.len());
    k.extend_from_slice(connector.as_bytes());
    k.push(0);
    k.extend_from_slice(key.as_bytes());
    k
}

/// A `keys` entry: `{dedupe key} 0xFF {event id}` (UTF-8 never holds `0xFF`, so the
/// entries of one key are exactly those under [`key_prefix`], in the order of arrival).
pub fn key_entry(key: &str, event_id: &str) -> Vec<u8> {
    let mut entry = key_prefix(key);
    entry.extend_from_slice(event_id.as_bytes());
    entry
}

/// What every `keys` entry of `key` starts with.
pub fn key_prefix(key: &str) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(key.len() + 1 + 26);
    prefix.extend_from_slice(key.as_bytes());
    prefix.push(0xFF);
    prefix
}

/// The event id of a `keys` entry.
pub fn event_of_key_entry(entry: &[u8]) -> Option<&str> {
    let at = entry.iter().position(|b| *b == 0xFF)?;
    std::str::from_utf8(&entry[at + 1..]).ok()
}

/// An `events` value is a prefix, then the record's JSON. The prefix is `0x01` and the
/// request's [`Location`]; or `0x03`, the location, and the key of the `queue` batch the
/// event waits in (one length byte, then the key) while it has not been dispatched; or,
/// for events stored before the inbox, nothing.
const TAGGED: u8 = 1;
const QUEUED: u8 = 3;

pub fn location_of(value: &[u8]) -> Option<Location> {
    match value.first() {
        Some(&TAGGED | &QUEUED) => Location::decode(&value[1..]),
        _ => None,
    }
}

/// The bytes before the record's JSON (empty for an untagged value).
pub fn prefix_of(value: &[u8]) -> &[u8] {
    let end = match value.first() {
        Some(&TAGGED) => 1 + Location::ENCODED,
        Some(&QUEUED) => {
            let len = value.get(1 + Location::ENCODED).copied().unwrap_or(0) as usize;
            1 + Location::ENCODED + 1 + len
        }
        _ => 0,
    };
    &value[..end.min(value.len())]
}

/// The `queue` batch an undispatched event waits in.
pub fn batch_of(value: &[u8]) -> Option<&[u8]> {
    match value.first() {
        Some(&QUEUED) => prefix_of(value).get(1 + Location::ENCODED + 1..),
        _ => None,
    }
}

/// The prefix of a value once its event has left the `queue` batch: the location alone.
pub fn dispatched_prefix(value: &[u8]) -> Cow<'_, [u8]> {
    let prefix = prefix_of(value);
    match prefix.first() {
        Some(&QUEUED) => match prefix.get(..1 + Location::ENCODED) {
            Some(location) => {
                let mut tagged = location.to_vec();
                tagged[0] = TAGGED;
                tagged.into()
            }
            // Truncated: no location to keep (the record reads as corrupt anyway).
            None => Cow::Borrowed(&[]),
        },
        _ => prefix.into(),
    }
}

pub fn decode_event(value: &[u8]) -> Result<EventRecord> {
    Ok(serde_json::from_slice(&value[prefix_of(value).len()..])?)
}

/// An `events` value for a record (as JSON) whose request is at `location`, waiting in the
/// `queue` batch `batch` if it is given (at most 255 bytes).
pub fn event_value(location: Location, batch: Option<&[u8]>, record_json: &[u8]) -> Vec<u8> {
    let mut value = Vec::with_capacity(2 + Location::ENCODED + 32 + record_json.len());
    match batch {
        Some(key) => {
            value.push(QUEUED);
            location.encode(&mut value);
            value.push(key.len() as u8);
            value.extend_from_slice(key);
        }
        None => {
            value.push(TAGGED);
            location.encode(&mut value);
        }
    }
    value.extend_from_slice(record_json);
    value
}

pub fn encode_event(prefix: &[u8], record: &EventRecord) -> Result<Vec<u8>> {
    let mut value = prefix.to_vec();
    serde_json::to_writer(&mut value, record)?;
    Ok(value)
}
