//! Mandrill: `X-Mandrill-Signature` over the signed URL and the form body's parameters.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::verify::Scheme;
use switchyard_fuzz::{Input, check};

fuzz_target!(|input: (String, Input)| {
    let (public_url, input) = input;
    check(
        Scheme::Mandrill { public_url },
        &["x-mandrill-signature"],
        input,
    )
});
