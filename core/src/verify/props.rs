//! Properties of every scheme over generated input: what `sign` produces, `verify`
//! accepts (for any body, id, secret and time), and no header value, query or body makes
//! a parser panic. The vendors' own vectors are in each scheme's module.

use http::{HeaderMap, HeaderName, HeaderValue};
use proptest::prelude::*;

use super::test_util::{all_schemes, verifier};
use super::{Request, Scheme, form, sign};
use crate::secret::Secret;

/// The request `sign`'s headers make, `token`'s `query` pair going to the query string.
fn signed(pairs: Vec<(String, String)>) -> (HeaderMap, String) {
    let mut headers = HeaderMap::new();
    let mut query = String::new();
    for (name, value) in pairs {
        if name == "query" {
            query = value;
        } else {
            headers.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(&value).unwrap(),
            );
        }
    }
    (headers, query)
}

/// A form body of `pairs` as a sender encodes it.
fn form_body(pairs: &[(String, String)]) -> Vec<u8> {
    url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
        .into_bytes()
}

/// Every header name any scheme reads.
const SIGNATURE_HEADERS: &[&str] = &[
    "stripe-signature",
    "webhook-id",
    "webhook-timestamp",
    "webhook-signature",
    "svix-id",
    "svix-timestamp",
    "svix-signature",
    "x-hub-signature-256",
    "x-shopify-hmac-sha256",
    "x-signature",
    "x-mandrill-signature",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever is signed with a secret verifies with it, at the time it was signed.
    #[test]
    fn what_is_signed_verifies(
        body in proptest::collection::vec(any::<u8>(), 0..2048),
        // Mandrill's fields are unique (a repeated one is refused as ambiguous).
        params in proptest::collection::btree_map("\\PC{0,12}", "\\PC{0,24}", 0..6),
        secret in "[A-Za-z0-9+/]{8,40}",
        id in "[A-Za-z0-9_-]{1,40}",
        now in 0i64..4_000_000_000,
    ) {
        // Standard Webhooks keys are base64; any other secret is used as given.
        let secret = format!("whsec_{}", base64::Engine::encode(&base64::engine::general_purpose::STANDARD, secret));
        for scheme in all_schemes() {
            // Mandrill signs form parameters, so its body is a form.
            let body = match scheme {
                Scheme::Mandrill { .. } => {
                    form_body(&params.clone().into_iter().collect::<Vec<_>>())
                }
                _ => body.clone(),
            };
            let pairs = sign(&scheme, &Secret::new(secret.clone()), &body, now, &id).unwrap();
            let (headers, query) = signed(pairs);
            let v = verifier(scheme.clone(), &[&secret]);
            let request = Request { headers: &headers, query: &query, body: &body };
            prop_assert!(v.verify(&request, now).is_ok(), "{scheme:?}");
        }
    }

    /// Any value in any signature header, any query and any body: an answer, never a panic,
    /// and never a pass (the odds of forging an HMAC by chance are nil).
    #[test]
    fn hostile_headers_never_panic_or_pass(
        values in proptest::collection::vec(proptest::collection::vec(32u8..127, 0..200), SIGNATURE_HEADERS.len()),
        query in "\\PC{0,100}",
        body in proptest::collection::vec(any::<u8>(), 0..512),
        now in any::<i64>(),
    ) {
        let mut headers = HeaderMap::new();
        for (name, value) in SIGNATURE_HEADERS.iter().zip(&values) {
            headers.insert(*name, HeaderValue::from_bytes(value).unwrap());
        }
        for scheme in all_schemes() {
            if scheme == Scheme::None {
                continue;
            }
            let v = verifier(scheme.clone(), &["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]);
            let request = Request { headers: &headers, query: &query, body: &body };
            prop_assert!(v.verify(&request, now).is_err(), "{scheme:?} passed");
        }
    }

    /// A form decodes back to the pairs it was encoded from; any bytes decode or are
    /// refused, without a panic.
    #[test]
    fn forms_round_trip(
        pairs in proptest::collection::vec(("\\PC{0,12}", "\\PC{0,24}"), 0..8),
        junk in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let encoded = form_body(&pairs);
        prop_assert_eq!(form::pairs(&encoded), Some(pairs));
        let _ = form::pairs(&junk);
    }
}
