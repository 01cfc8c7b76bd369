//! The records every engine stores: what an event, its request, its attempts and its
//! deliveries are (defined in `switchyard-core`, which the fuzz targets build without the
//! rest of the host), and what an insert takes and gives back.

pub use switchyard_core::record::*;

/// A verified request to store, with the connector's dedupe key.
#[derive(Debug)]
pub struct NewEvent {
    pub record: EventRecord,
    pub request: StoredRequest,
    /// Dedupe on this key within `window_ms`.
    pub dedupe: Option<(String, u64)>,
}

/// What [`super::Storage::insert_event`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// New event, queued for dispatch.
    Accepted { id: String },
    /// A repeat: recorded as its own `duplicate` event that points at `first_id`.
    Duplicate { id: String, first_id: String },
}
