//! What the inbox holds: the payload of each entry, written and read here only.
//!
//! The inbox is the store's truth (sled is an index rebuilt from it when it cannot be
//! trusted, `recovery.rs`), so it holds everything a rebuild needs, each payload tagged by
//! its first byte:
//!
//! - [`ENTRY`]: a new event, its record as accepted and its request ([`encode_entry`]);
//! - [`PROGRESS`]: an event's record and deliveries once it has settled (`succeeded` or
//!   `dead`), or when a replay sent it back to its connector ([`encode_progress`]);
//! - [`KV`]: a connector's `kv` write, or the API's pause/resume, which live in `kv` too
//!   ([`encode_kv`]).
//!
//! Progress in between (a try that failed, a retry scheduled) lives in sled only: losing it
//! costs a re-send with the same `Idempotency-Key`, never an event.
//!
//! Payloads of earlier layouts still read: the request's JSON alone (it starts with `{`),
//! and [`JSON_ENTRY`].

use serde::{Deserialize, Serialize};

use super::{CodecError, Result};
use crate::record::{Body, DeliveryRecord, EventRecord, StoredRequest};

/// An inbox payload in this layout starts with this byte, then the record's JSON length
/// (`u32`, little-endian), the record's JSON and the request ([`encode_request`]).
/// Payloads written before the record moved into the inbox are the request's JSON alone
/// (they start with `{`); [`JSON_ENTRY`] payloads hold the request as JSON.
const ENTRY: u8 = 4;
/// The same with the request as JSON (written by development builds only).
const JSON_ENTRY: u8 = 2;

/// The inbox payload of an event.
pub fn encode_entry(record_json: &[u8], request: &StoredRequest) -> Result<Vec<u8>> {
    let len = u32::try_from(record_json.len())
        .map_err(|_| CodecError::Invalid("event record too large".into()))?;
    let mut entry = Vec::with_capacity(5 + record_json.len() + request.body.len() + 512);
    entry.push(ENTRY);
    entry.extend_from_slice(&len.to_le_bytes());
    entry.extend_from_slice(record_json);
    encode_request(request, &mut entry)?;
    Ok(entry)
}

/// The record's JSON in an inbox payload (`None` for the older, request-only layout).
pub fn entry_record(payload: &[u8]) -> Option<&[u8]> {
    let (_, len, rest) = split_entry(payload)?;
    rest.get(..len)
}

/// The request in an inbox payload of any layout.
pub fn entry_request(payload: &[u8]) -> Result<StoredRequest> {
    match split_entry(payload) {
        Some((tag, len, rest)) => {
            let request = rest
                .get(len..)
                .ok_or_else(|| CodecError::Corrupt("inbox entry".into()))?;
            if tag == ENTRY {
                decode_request(request)
            } else {
                Ok(serde_json::from_slice(request)?)
            }
        }
        None => Ok(serde_json::from_slice(payload)?),
    }
}

fn split_entry(payload: &[u8]) -> Option<(u8, usize, &[u8])> {
    let tag = *payload.first()?;
    if tag != ENTRY && tag != JSON_ENTRY {
        return None;
    }
    let len = u32::from_le_bytes(payload.get(1..5)?.try_into().ok()?) as usize;
    Some((tag, len, &payload[5..]))
}

/// A request as bytes, not JSON (a body is mostly JSON itself, which JSON would escape):
/// method, path and query, the number of headers, each name and value, and the body; every
/// field a `u32` length (little-endian) and its bytes.
fn encode_request(request: &StoredRequest, out: &mut Vec<u8>) -> Result<()> {
    fn field(out: &mut Vec<u8>, bytes: &[u8]) -> Result<()> {
        let len = u32::try_from(bytes.len())
            .map_err(|_| CodecError::Invalid("request too large".into()))?;
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(bytes);
        Ok(())
    }
    field(out, request.method.as_bytes())?;
    field(out, request.path.as_bytes())?;
    field(out, request.query.as_bytes())?;
    let count = u32::try_from(request.headers.len())
        .map_err(|_| CodecError::Invalid("too many headers".into()))?;
    out.extend_from_slice(&count.to_le_bytes());
    for (name, value) in &request.headers {
        field(out, name.as_bytes())?;
        field(out, value.as_bytes())?;
    }
    field(out, request.body.as_bytes())
}

fn decode_request(mut bytes: &[u8]) -> Result<StoredRequest> {
    let corrupt = || CodecError::Corrupt("a request in the inbox".into());
    let u32_field = |bytes: &mut &[u8]| -> Result<u32> {
        let (head, rest) = bytes.split_at_checked(4).ok_or_else(corrupt)?;
        *bytes = rest;
        Ok(u32::from_le_bytes(head.try_into().expect("4 bytes")))
    };
    let field = |bytes: &mut &[u8]| -> Result<Vec<u8>> {
        let len = u32_field(bytes)? as usize;
        let (head, rest) = bytes.split_at_checked(len).ok_or_else(corrupt)?;
        *bytes = rest;
        Ok(head.to_vec())
    };
    let text = |raw: Vec<u8>| String::from_utf8(raw).map_err(|_| corrupt());
    let method = text(field(&mut bytes)?)?;
    let path = text(field(&mut bytes)?)?;
    let query = text(field(&mut bytes)?)?;
    let count = u32_field(&mut bytes)? as usize;
    // Never trust a count to size an allocation: each header takes at least 8 bytes.
    let mut headers = Vec::with_capacity(count.min(bytes.len() / 8));
    for _ in 0..count {
        let name = text(field(&mut bytes)?)?;
        let value = text(field(&mut bytes)?)?;
        headers.push((name, value));
    }
    let body = field(&mut bytes)?.into();
    Ok(StoredRequest {
        method,
        path,
        query,
        headers,
        body,
    })
}

/// An event's progress (see the module docs): JSON after the tag.
const PROGRESS: u8 = 5;
/// A `kv` write: JSON after the tag.
const KV: u8 = 6;

/// An entry of the inbox, decoded as far as recovery needs.
#[derive(Debug, PartialEq, Eq)]
pub enum Entry<'a> {
    /// A new event: its record's JSON (the request follows it, see [`entry_request`]).
    Event {
        record: &'a [u8],
    },
    Progress(Box<Progress>),
    Kv(KvWrite),
    /// A request written before the record moved into the inbox: nothing to rebuild from.
    RequestOnly,
}

/// An event's record and every delivery of it, as they were when it settled or was
/// replayed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Progress {
    pub record: EventRecord,
    pub deliveries: Vec<DeliveryRecord>,
}

/// A `kv` write; `value: None` deletes the key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvWrite {
    pub connector: String,
    pub key: String,
    pub value: Option<Body>,
}

/// Decode an entry's payload. A payload that is none of the layouts is an error (the CRC
/// matched, so only a bug or a hostile disk writes one), never a panic.
pub fn decode(payload: &[u8]) -> Result<Entry<'_>> {
    let corrupt = |what: &str| CodecError::Corrupt(format!("inbox entry: {what}"));
    match payload.first() {
        Some(&(ENTRY | JSON_ENTRY)) => entry_record(payload)
            .map(|record| Entry::Event { record })
            .ok_or_else(|| corrupt("an event record past its end")),
        Some(&PROGRESS) => Ok(Entry::Progress(serde_json::from_slice(&payload[1..])?)),
        Some(&KV) => Ok(Entry::Kv(serde_json::from_slice(&payload[1..])?)),
        Some(b'{') => Ok(Entry::RequestOnly),
        Some(tag) => Err(corrupt(&format!("unknown tag {tag}"))),
        None => Err(corrupt("empty")),
    }
}

/// The inbox payload of an event's progress.
pub fn encode_progress(progress: &Progress) -> Result<Vec<u8>> {
    let mut entry = vec![PROGRESS];
    serde_json::to_writer(&mut entry, progress)?;
    Ok(entry)
}

/// The inbox payload of a `kv` write.
pub fn encode_kv(write: &KvWrite) -> Result<Vec<u8>> {
    let mut entry = vec![KV];
    serde_json::to_writer(&mut entry, write)?;
    Ok(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(body: &[u8]) -> StoredRequest {
        StoredRequest {
            method: "POST".into(),
            path: "/hooks/stripe".into(),
            query: "a=1&b=é".into(),
            headers: vec![
                ("content-type".into(), "application/json".into()),
                ("x-empty".into(), String::new()),
            ],
            body: body.into(),
        }
    }

    #[test]
    fn entries_hold_the_record_and_the_request_exactly() {
        for body in [&b"{\"id\":\"evt_1\"}"[..], &[0xff, 0x00, b'"'], b""] {
            let entry = encode_entry(br#"{"id":"01A"}"#, &request(body)).unwrap();
            assert_eq!(entry_record(&entry), Some(&br#"{"id":"01A"}"#[..]));
            assert_eq!(entry_request(&entry).unwrap(), request(body));
        }
    }

    #[test]
    fn earlier_layouts_still_read() {
        let json = serde_json::to_vec(&request(b"old")).unwrap();
        // Before the record moved into the inbox: the request's JSON alone.
        assert_eq!(entry_record(&json), None);
        assert_eq!(entry_request(&json).unwrap(), request(b"old"));
        // The record, then the request as JSON.
        let mut entry = vec![JSON_ENTRY];
        entry.extend_from_slice(&2u32.to_le_bytes());
        entry.extend_from_slice(b"{}");
        entry.extend_from_slice(&json);
        assert_eq!(entry_record(&entry), Some(&b"{}"[..]));
        assert_eq!(entry_request(&entry).unwrap(), request(b"old"));
    }

    #[test]
    fn a_corrupt_request_is_an_error_not_a_panic() {
        let entry = encode_entry(b"{}", &request(b"body")).unwrap();
        for cut in 0..entry.len() {
            let _ = entry_request(&entry[..cut]);
        }
        assert!(entry_request(&entry[..entry.len() - 1]).is_err());
        // A header count far beyond the bytes that follow.
        let mut lying = vec![ENTRY, 0, 0, 0, 0];
        for _ in 0..3 {
            lying.extend_from_slice(&0u32.to_le_bytes());
        }
        lying.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(entry_request(&lying).is_err());
    }

    #[test]
    fn every_kind_of_entry_decodes_as_written() {
        let entry = encode_entry(br#"{"id":"01A"}"#, &request(b"{}")).unwrap();
        assert_eq!(
            decode(&entry).unwrap(),
            Entry::Event {
                record: br#"{"id":"01A"}"#
            }
        );
        let record = EventRecord::received("01A".into(), "stripe".into(), 10, "stripe");
        let progress = Progress {
            record,
            deliveries: Vec::new(),
        };
        assert_eq!(
            decode(&encode_progress(&progress).unwrap()).unwrap(),
            Entry::Progress(Box::new(progress))
        );
        for value in [Some(Body::from(vec![0xff, 0, 1])), None] {
            let write = KvWrite {
                connector: "stripe".into(),
                key: "cursor".into(),
                value,
            };
            assert_eq!(
                decode(&encode_kv(&write).unwrap()).unwrap(),
                Entry::Kv(write)
            );
        }
        let json = serde_json::to_vec(&request(b"old")).unwrap();
        assert_eq!(decode(&json).unwrap(), Entry::RequestOnly);
    }

    #[test]
    fn a_payload_of_no_layout_is_an_error() {
        for payload in [
            &b""[..],
            &[9, 1, 2],
            &[PROGRESS, b'x'],
            &[KV],
            &[ENTRY, 200, 0, 0, 0],
        ] {
            assert!(decode(payload).is_err(), "{payload:?}");
        }
    }

    mod props {
        use proptest::prelude::*;

        use super::super::*;
        use crate::store::Location;
        use crate::store::value;

        fn request() -> impl Strategy<Value = StoredRequest> {
            (
                "[A-Z]{1,8}",
                "\\PC{0,40}",
                "\\PC{0,40}",
                proptest::collection::vec(("[a-z0-9-]{1,20}", "\\PC{0,60}"), 0..8),
                proptest::collection::vec(any::<u8>(), 0..1024),
            )
                .prop_map(|(method, path, query, headers, body)| StoredRequest {
                    method,
                    path,
                    query,
                    headers,
                    body: Body::from(body),
                })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// An event's entry reads back as written: its record and its request.
            #[test]
            fn entries_round_trip(
                record in proptest::collection::vec(any::<u8>(), 0..300),
                request in request(),
            ) {
                let payload = encode_entry(&record, &request).unwrap();
                prop_assert_eq!(entry_record(&payload), Some(&record[..]));
                prop_assert_eq!(entry_request(&payload).unwrap(), request);
                let event = matches!(decode(&payload), Ok(Entry::Event { .. }));
                prop_assert!(event, "an event entry decodes as one");
            }

            /// Any bytes (a torn or hostile disk behind a matching CRC): an entry or an
            /// error, never a panic; the same for the index's event values.
            #[test]
            fn any_bytes_decode_or_fail_without_a_panic(
                bytes in proptest::collection::vec(any::<u8>(), 0..600),
                tag in prop_oneof![Just(ENTRY), Just(JSON_ENTRY), Just(PROGRESS), Just(KV), any::<u8>()],
            ) {
                let mut payload = vec![tag];
                payload.extend_from_slice(&bytes);
                for payload in [&bytes[..], &payload[..]] {
                    let _ = decode(payload);
                    let _ = entry_request(payload);
                    let _ = entry_record(payload);
                    let _ = value::decode_event(payload);
                    let _ = value::location_of(payload);
                    let _ = value::batch_of(payload);
                    let _ = value::dispatched_prefix(payload);
                }
            }

            /// An index value keeps its location, its queue batch and its record.
            #[test]
            fn event_values_round_trip(
                segment in any::<u64>(),
                offset in any::<u64>(),
                len in any::<u32>(),
                batch in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..255)),
                record in "\\PC{0,200}",
            ) {
                let location = Location { segment, offset, len };
                let json = serde_json::to_vec(&record).unwrap();
                let stored = value::event_value(location, batch.as_deref(), &json);
                prop_assert_eq!(value::location_of(&stored), Some(location));
                prop_assert_eq!(value::batch_of(&stored), batch.as_deref());
                prop_assert_eq!(&stored[value::prefix_of(&stored).len()..], &json[..]);
            }
        }
    }
}
