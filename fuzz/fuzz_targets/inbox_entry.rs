//! The inbox's entries as read back from disk (a torn or hostile write behind a matching
//! CRC): an entry or an error, never a panic; an event entry that decodes re-encodes to
//! the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::store::entry::{self, Entry};

fuzz_target!(|payload: &[u8]| {
    let decoded = entry::decode(payload);
    let record = entry::entry_record(payload);
    if let (Ok(Entry::Event { record: json }), Ok(request)) =
        (&decoded, entry::entry_request(payload))
    {
        assert_eq!(record, Some(*json));
        // What decodes in this layout encodes back to what was read, byte for byte.
        if payload.first() == Some(&4) {
            let again = entry::encode_entry(json, &request).expect("it was read, so it fits");
            assert_eq!(again, payload[..again.len()]);
        }
    }
});
