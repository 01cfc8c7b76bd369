//! The `token` scheme: the secret in the query string (form-encoded, any bytes).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::verify::Scheme;
use switchyard_fuzz::{Input, check};

fuzz_target!(|input: Input| check(Scheme::Token, &["x-unused"], input));
