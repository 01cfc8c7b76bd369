//! Helpers shared by the scheme modules' tests.

use http::{HeaderMap, HeaderName, HeaderValue};

use super::{DEFAULT_TOLERANCE, Encoding, Request, Scheme, Verifier, VerifyError};
use crate::secret::Secret;

pub(super) const MANDRILL_URL: &str = "https://example.com/hooks/mandrill";

pub(super) fn shopify() -> Scheme {
    Scheme::HmacSha256 {
        header: "X-Shopify-Hmac-Sha256".to_owned(),
        encoding: Encoding::Base64,
        prefix: String::new(),
    }
}

pub(super) fn mandrill() -> Scheme {
    Scheme::Mandrill {
        public_url: MANDRILL_URL.to_owned(),
    }
}

/// One of each scheme, and the generic one in both encodings.
pub(super) fn all_schemes() -> Vec<Scheme> {
    vec![
        Scheme::Stripe,
        Scheme::StandardWebhooks,
        Scheme::Github,
        shopify(),
        Scheme::HmacSha256 {
            header: "X-Signature".to_owned(),
            encoding: Encoding::Hex,
            prefix: "sha256=".to_owned(),
        },
        mandrill(),
        Scheme::Token,
        Scheme::None,
    ]
}

pub(super) fn verifier(scheme: Scheme, secrets: &[&str]) -> Verifier {
    let secrets = secrets.iter().map(|s| Secret::new(*s)).collect();
    Verifier::new(scheme, secrets, DEFAULT_TOLERANCE)
}

pub(super) fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        map.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    map
}

pub(super) fn verify(
    v: &Verifier,
    headers: &HeaderMap,
    query: &str,
    body: &[u8],
    now: i64,
) -> Result<(), VerifyError> {
    let req = Request {
        headers,
        query,
        body,
    };
    v.verify(&req, now)
}

/// The error code, or "ok".
pub(super) fn code(result: Result<(), VerifyError>) -> &'static str {
    match result {
        Ok(()) => "ok",
        Err(e) => e.code(),
    }
}
