//! Host bindings for each frozen WIT version.
//!
//! One module per version folder under `wit/`. A future `0.2.0` gets its own module here,
//! and [`super::engine`] tries the newest world first, then the older ones, so connectors
//! built against `0.1.0` keep loading (the zed `since_v0_*` pattern).

/// `switchyard:connector@0.1.0`.
pub mod v0_1_0 {
    wasmtime::component::bindgen!({
        world: "connector",
        path: "../wit/0.1.0",
        imports: { default: async },
        exports: { default: async },
    });
}

pub use v0_1_0::switchyard::connector::types::{Delivery, Failure, Manifest, SettingInfo, Webhook};
