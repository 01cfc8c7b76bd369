//! The index's event values (a location, a queue batch, the record's JSON) and the event
//! record's JSON (the NATS backend keeps it as is): a record or an error, never a panic;
//! a record that decodes re-encodes to one that decodes the same.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::record::EventRecord;
use switchyard_core::store::value;

fuzz_target!(|bytes: &[u8]| {
    let _ = value::location_of(bytes);
    let _ = value::batch_of(bytes);
    let _ = value::dispatched_prefix(bytes);
    if let Ok(record) = value::decode_event(bytes) {
        let again = value::encode_event(value::prefix_of(bytes), &record).expect("encodes");
        assert_eq!(value::decode_event(&again).expect("decodes"), record);
    }
    if let Ok(record) = serde_json::from_slice::<EventRecord>(bytes) {
        let json = serde_json::to_vec(&record).expect("encodes");
        assert_eq!(
            serde_json::from_slice::<EventRecord>(&json).expect("decodes"),
            record
        );
    }
});
