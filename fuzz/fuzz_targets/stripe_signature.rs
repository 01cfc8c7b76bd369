//! `Stripe-Signature: t=…,v1=…` (several `v1`, unknown schemes, repeats).
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard_core::verify::Scheme;
use switchyard_fuzz::{Input, check};

fuzz_target!(|input: Input| check(Scheme::Stripe, &["stripe-signature"], input));
