//! GitHub's `X-Hub-Signature-256` and the generic `hmac-sha256` in hex and base64.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::verify::{Encoding, Scheme};
use switchyard_fuzz::{Input, check};

fuzz_target!(|input: (u8, Input)| {
    let (which, input) = input;
    let scheme = match which % 3 {
        0 => Scheme::Github,
        1 => Scheme::HmacSha256 {
            header: "x-shopify-hmac-sha256".into(),
            encoding: Encoding::Base64,
            prefix: String::new(),
        },
        _ => Scheme::HmacSha256 {
            header: "x-signature".into(),
            encoding: Encoding::Hex,
            prefix: "sha256=".into(),
        },
    };
    check(
        scheme,
        &[
            "x-hub-signature-256",
            "x-shopify-hmac-sha256",
            "x-signature",
        ],
        input,
    )
});
