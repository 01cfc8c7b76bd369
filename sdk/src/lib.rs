//! Write [Switchyard](https://example.invalid/switchyard) webhook connectors in Rust.
//!
//! A connector is a small crate that implements [`Connector`] and calls [`export!`] once.
//! Built for `wasm32-wasip2`, it becomes a WebAssembly component the Switchyard host loads
//! from its plugins folder; under `cargo test` the same logic runs natively against a
//! [`TestHost`] with mocked settings, fetches and key-value state.
//!
//! ```
//! use switchyard_sdk::{Connector, Ctx, Delivery, Failure, Manifest, Webhook};
//!
//! pub struct Echo;
//!
//! impl Connector for Echo {
//!     fn manifest() -> Manifest {
//!         Manifest::new("echo", "0.1.0")
//!             .description("Forwards every event unchanged")
//!             .default_scheme("hmac-sha256")
//!             .required_setting("forward_url", "Where events are POSTed")
//!     }
//!
//!     fn handle(ctx: &Ctx, webhook: &Webhook) -> Result<Vec<Delivery>, Failure> {
//!         let url = ctx.require_setting("forward_url")?;
//!         Ok(vec![Delivery::post(url).body(webhook.body.clone())])
//!     }
//! }
//!
//! switchyard_sdk::export!(Echo);
//! # fn main() {}
//! ```
//!
//! # Layout
//! - [`webhook`](Webhook): the received event and its body helpers (JSON, text, [`Form`]).
//! - [`Delivery`], [`Request`], [`Response`]: outbound HTTP, performed by the host later
//!   (deliveries, with retries) or now ([`Ctx::fetch`]).
//! - [`Ctx`]: the capabilities the host grants during `handle` (settings, fetch, kv, log,
//!   clock).
//! - [`TestHost`]: a native stand-in for the host, for unit tests.
//! - `bindings` (hidden): the `wit-bindgen` guest bindings of `switchyard:connector@0.1.1`;
//!   the only place with `unsafe` code, and only compiled for `wasm32`.
#![deny(missing_docs)]

// The generated bindings and the export macro refer to this crate as `::switchyard_sdk`, so
// the same paths work inside the SDK and in the connector crate that expands `export!`.
extern crate self as switchyard_sdk;

mod ctx;
mod failure;
mod form;
#[cfg(target_arch = "wasm32")]
mod guest;
mod http;
mod manifest;
mod test_host;
mod webhook;

pub use ctx::{Ctx, Kv, KvError, Level};
pub use failure::Failure;
pub use form::{Form, FormValue};
pub use http::{Delivery, FetchError, Request, Response};
pub use manifest::{Manifest, SettingInfo};
pub use test_host::TestHost;
pub use webhook::{Webhook, WebhookBuilder};

/// The version of the WIT contract (`switchyard:connector@…`) this SDK builds against.
pub const WIT_VERSION: &str = "0.1.1";

/// What a connector implements: describe itself, pick a dedupe key, handle one event.
///
/// The functions take no `self`: the host runs every call in a fresh instance, so there is
/// no state to keep between events other than [`Ctx::kv`].
pub trait Connector {
    /// Describes the connector (called once when the host loads it).
    fn manifest() -> Manifest;

    /// The key the host dedupes deliveries of the same event on (e.g. Stripe's `evt_…`
    /// id). `None` (the default) disables dedupe for this request.
    ///
    /// Runs on the ingress path before the sender gets its answer, with no capabilities:
    /// keep it cheap. The host may reuse one instance for many `dedupe_key` calls (unlike
    /// `handle`, which always gets a fresh one), so derive the key from the webhook alone.
    fn dedupe_key(webhook: &Webhook) -> Option<String> {
        let _ = webhook;
        None
    }

    /// Decides what to do with one event: the deliveries the host performs (with its own
    /// retries), or a [`Failure`] saying whether to retry the event later or reject it.
    fn handle(ctx: &Ctx, webhook: &Webhook) -> Result<Vec<Delivery>, Failure>;

    /// Checks the operator's settings ([`Ctx::setting`]) when the host loads the connector
    /// or its config changes, before any event. `Err` says what is wrong, naming the
    /// setting; the host then refuses that config and the previous one keeps serving. The
    /// default takes any settings (a setting the manifest marks required is for
    /// [`Ctx::require_setting`] to report at `handle`).
    fn check_settings(ctx: &Ctx) -> Result<(), String> {
        let _ = ctx;
        Ok(())
    }
}

/// Exports a [`Connector`] as the component's implementation of the `connector` world.
///
/// Call it once, at the top level of the connector crate:
///
/// ```ignore
/// switchyard_sdk::export!(MyConnector);
/// ```
///
/// On `wasm32` it generates the component exports; on other targets (native `cargo test`)
/// it only checks that the type implements [`Connector`]. The connector crate must depend
/// on this crate under its own name, `switchyard_sdk` (no renaming in `Cargo.toml`).
#[macro_export]
macro_rules! export {
    ($connector:ty) => {
        const _: () = {
            fn __switchyard_assert_connector<C: $crate::Connector>() {}
            let _ = __switchyard_assert_connector::<$connector>;
        };

        #[cfg(target_arch = "wasm32")]
        const _: () = {
            struct __SwitchyardGuest;

            impl $crate::bindings::Guest for __SwitchyardGuest {
                fn manifest() -> $crate::bindings::Manifest {
                    $crate::__private::manifest::<$connector>()
                }

                fn dedupe_key(
                    webhook: $crate::bindings::Webhook,
                ) -> ::core::option::Option<::std::string::String> {
                    $crate::__private::dedupe_key::<$connector>(webhook)
                }

                fn handle(
                    webhook: $crate::bindings::Webhook,
                ) -> ::core::result::Result<
                    ::std::vec::Vec<$crate::bindings::Delivery>,
                    $crate::bindings::Failure,
                > {
                    $crate::__private::handle::<$connector>(webhook)
                }

                fn check_settings() -> ::core::result::Result<(), ::std::string::String> {
                    $crate::__private::check_settings::<$connector>()
                }
            }

    $crate::__export_connector_impl!(__SwitchyardGuest with_types_in $crate::bindings);
        };
    };
}

/// Implementation details of [`export!`]; not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    #[cfg(target_arch = "wasm32")]
    pub use crate::guest::{check_settings, dedupe_key, handle, manifest};
}

/// Guest bindings generated from `wit/0.1.1` (the canonical ABI glue needs `unsafe`; it is
/// confined to this module).
#[doc(hidden)]
#[cfg(target_arch = "wasm32")]
#[allow(unsafe_code, missing_docs, clippy::all)]
pub mod bindings {
    wit_bindgen::generate!({
        path: "../wit/0.1.1",
        world: "connector",
        pub_export_macro: true,
        default_bindings_module: "::switchyard_sdk::bindings",
        runtime_path: "::switchyard_sdk::__private::wit_bindgen::rt",
    });
}
