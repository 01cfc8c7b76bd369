//! What Switchyard reads from the network and from disk, and nothing that runs it: the
//! signature schemes ([`verify`]), the records the event log keeps ([`record`]), the
//! embedded store's on-disk codecs ([`store`]) and the [`secret::Secret`] wrapper.
//!
//! It is its own crate so that the parsers of untrusted bytes build alone, without
//! wasmtime or the runtime: the fuzz targets under `fuzz/` depend on this crate only, and
//! an instrumented build of it takes seconds. The host re-exports each module where it
//! used to live (`switchyard::verify`, `switchyard::store::EventRecord`, …).

pub mod record;
pub mod secret;
pub mod store;
pub mod verify;
