//! Standard Webhooks and Svix: `webhook-id`/`-timestamp`/`-signature` and the `svix-` forms.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::verify::Scheme;
use switchyard_fuzz::{Input, check};

fuzz_target!(|input: Input| check(
    Scheme::StandardWebhooks,
    &[
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "svix-id",
        "svix-timestamp",
        "svix-signature",
    ],
    input
));
