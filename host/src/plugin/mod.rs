//! Hosting connectors: the WIT bindings per version, the shared engine, the capabilities
//! (host imports) a connector is granted, and the registry of live connectors.

pub mod bindings;
pub mod engine;
pub mod imports;
pub mod registry;

pub use engine::{CallError, HandleOutcome, Limits, LoadError, Plugin, Runtime};
pub use imports::{AllowedHosts, FetchRecord, Grants, LogLine, redact_request};
pub use registry::{Connector, ConnectorState, Registry};
