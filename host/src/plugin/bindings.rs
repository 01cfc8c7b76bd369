//! Host bindings for each frozen WIT version.
//!
//! One module per version folder under `wit/`. The linker provides the newest version's
//! imports ([`current`]); a component built against an older, semver-compatible version
//! (0.1.0) imports the same interfaces under its own version, which the linker resolves to
//! the newest. Its exports are bound by its own version's module, whose interfaces are
//! mapped (`with`) onto the newest one's, so both bind the same Rust types.
//! [`super::engine`] tries the newest world first, then the older ones (the zed
//! `since_v0_*` pattern).

/// `switchyard:connector@0.1.1`: 0.1.0 plus the `check-settings` export.
pub mod v0_1_1 {
    wasmtime::component::bindgen!({
        world: "connector",
        path: "../wit/0.1.1",
        imports: { default: async },
        exports: { default: async },
    });
}

/// `switchyard:connector@0.1.0`: its exports only (the imports are 0.1.1's).
pub mod v0_1_0 {
    wasmtime::component::bindgen!({
        world: "connector",
        path: "../wit/0.1.0",
        imports: { default: async },
        exports: { default: async },
        with: {
            "switchyard:connector/types": super::v0_1_1::switchyard::connector::types,
            "switchyard:connector/settings": super::v0_1_1::switchyard::connector::settings,
            "switchyard:connector/http": super::v0_1_1::switchyard::connector::http,
            "switchyard:connector/kv": super::v0_1_1::switchyard::connector::kv,
            "switchyard:connector/log": super::v0_1_1::switchyard::connector::log,
            "switchyard:connector/clock": super::v0_1_1::switchyard::connector::clock,
        },
    });
}

/// The version whose imports the host provides.
pub use v0_1_1 as current;

pub use current::switchyard::connector::types::{
    Delivery, Failure, Manifest, SettingInfo, Webhook,
};
