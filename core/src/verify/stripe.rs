//! Stripe: `Stripe-Signature: t=<unix s>,v1=<hex>[,v1=<hex>…][,v0=<hex>]`, HMAC-SHA256 over
//! `"{t}." + body` keyed with the secret as given (`whsec_` included).

use std::borrow::Cow;

use super::{
    Alg, Claim, Encoding, Request, VerifyError, decode_signature, hmac, malformed, parse_timestamp,
    push_candidate, required_header,
};

const HEADER: &str = "stripe-signature";

/// The signed bytes, with `t` exactly as sent (leading zeros and all).
fn message<'a>(t: &'a str, body: &'a [u8]) -> Vec<Cow<'a, [u8]>> {
    vec![
        Cow::Borrowed(t.as_bytes()),
        Cow::Borrowed(b"."),
        Cow::Borrowed(body),
    ]
}

/// Split on `,`, then on the first `=`, without trimming (as Stripe's parsers). Only `v1`
/// counts; `v0` (a decoy on test events) and unknown keys are ignored; a second `t` would
/// be ambiguous and is rejected.
pub(super) fn claim<'a>(req: &Request<'a>) -> Result<Claim<'a>, VerifyError> {
    let value = required_header(req.headers, HEADER)?;
    let mut t = None;
    let mut candidates = Vec::new();
    for item in value.split(',') {
        match item.split_once('=') {
            Some(("t", text)) => {
                if t.is_some() {
                    return Err(malformed("`stripe-signature` has more than one `t`"));
                }
                t = Some(text);
            }
            Some(("v1", sig)) => {
                let sig = decode_signature(sig, Encoding::Hex, Alg::Sha256, "a `v1` signature")?;
                push_candidate(&mut candidates, sig)?;
            }
            _ => {}
        }
    }
    let t = t.ok_or_else(|| malformed("`stripe-signature` has no `t`"))?;
    let timestamp = parse_timestamp(t, "`t` in `stripe-signature`")?;
    if candidates.is_empty() {
        return Err(malformed("`stripe-signature` has no `v1` signature"));
    }
    Ok(Claim {
        alg: Alg::Sha256,
        message: message(t, req.body),
        candidates,
        timestamp: Some(timestamp),
    })
}

pub(super) fn sign(key: &[u8], body: &[u8], t: &str) -> Vec<(String, String)> {
    let mac = hmac(Alg::Sha256, key, &message(t, body));
    vec![(
        "Stripe-Signature".to_owned(),
        format!("t={t},v1={}", hex::encode(mac)),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::*;

    const SECRET: &str = "whsec_test_secret";
    const T: i64 = 1_700_000_000;
    const BODY: &[u8] = br#"{"id":"evt_test_webhook","object":"event"}"#;
    // The docs/vendors.md vector, cross-checked independently in the shell with Python's hmac
    //   python3 -c 'import hmac,hashlib; print(hmac.new(b"whsec_test_secret",
    //     b"1700000000.{\"id\":\"evt_test_webhook\",\"object\":\"event\"}",
    //     hashlib.sha256).hexdigest())'
    // and with OpenSSL
    //   printf %s '1700000000.{"id":"evt_test_webhook","object":"event"}' |
    //     openssl dgst -sha256 -hmac whsec_test_secret
    // both of which print this value.
    const V1: &str = "d95c6b7477fbd7e9f90b1b0ef5f9c7ac25abca5382460e0d988c2b2a5b71b990";

    fn stripe(header: &str, secrets: &[&str], now: i64) -> Result<(), VerifyError> {
        let h = headers(&[("Stripe-Signature", header)]);
        verify(&verifier(Scheme::Stripe, secrets), &h, "", BODY, now)
    }

    fn good() -> String {
        format!("t={T},v1={V1}")
    }

    #[test]
    fn vector_verifies() {
        stripe(&good(), &[SECRET], T).unwrap();
    }

    #[test]
    fn vector_signs() {
        let signed = sign(&Scheme::Stripe, &Secret::new(SECRET), BODY, T, "").unwrap();
        assert_eq!(signed, [("Stripe-Signature".to_owned(), good())]);
    }

    #[test]
    fn wrong_secret_or_body_is_a_mismatch() {
        assert_eq!(
            code(stripe(&good(), &["whsec_other"], T)),
            "signature_mismatch"
        );
        // The key is the secret as given: without `whsec_` it is another key.
        assert_eq!(
            code(stripe(&good(), &["test_secret"], T)),
            "signature_mismatch"
        );
        let h = headers(&[("Stripe-Signature", &good())]);
        let v = verifier(Scheme::Stripe, &[SECRET]);
        assert_eq!(code(verify(&v, &h, "", b"{}", T)), "signature_mismatch");
    }

    #[test]
    fn rotated_secrets_any_may_match() {
        stripe(&good(), &["whsec_new", SECRET], T).unwrap();
        stripe(&good(), &[SECRET, "whsec_new"], T).unwrap();
        // The sender's side of a rotation: several `v1`, the second one matching.
        let header = format!("t={T},v1={},v1={V1}", "ab".repeat(32));
        stripe(&header, &[SECRET], T).unwrap();
    }

    #[test]
    fn v0_and_unknown_keys_are_ignored() {
        let header = format!("t={T},v0={},x=y,novalue,,v1={V1}", "00".repeat(32));
        stripe(&header, &[SECRET], T).unwrap();
        // Uppercase hex decodes to the same bytes.
        stripe(&format!("t={T},v1={}", V1.to_uppercase()), &[SECRET], T).unwrap();
    }

    #[test]
    fn v0_only_is_malformed() {
        let result = stripe(&format!("t={T},v0={V1}"), &[SECRET], T);
        assert_eq!(code(result), "malformed_signature");
    }

    #[test]
    fn tolerance_applies_both_ways() {
        let tol = DEFAULT_TOLERANCE.as_secs() as i64;
        stripe(&good(), &[SECRET], T + tol).unwrap();
        stripe(&good(), &[SECRET], T - tol).unwrap();
        let stale = stripe(&good(), &[SECRET], T + tol + 1);
        assert!(matches!(
            stale,
            Err(VerifyError::Stale {
                timestamp: T,
                tolerance_secs: 300,
                ..
            })
        ));
        assert_eq!(code(stale), "timestamp_out_of_tolerance");
        // Our decision (Stripe's libraries accept it): a future timestamp is rejected too.
        let future = stripe(&good(), &[SECRET], T - tol - 1);
        assert_eq!(code(future), "timestamp_out_of_tolerance");
        // Extreme clocks do not overflow.
        for now in [i64::MIN, i64::MAX] {
            assert_eq!(
                code(stripe(&good(), &[SECRET], now)),
                "timestamp_out_of_tolerance"
            );
        }
    }

    #[test]
    fn a_stale_forgery_is_a_mismatch() {
        let result = stripe(&good(), &["whsec_other"], T + 10_000);
        assert_eq!(code(result), "signature_mismatch");
    }

    #[test]
    fn missing_header() {
        let v = verifier(Scheme::Stripe, &[SECRET]);
        let result = verify(&v, &HeaderMap::new(), "", BODY, T);
        assert!(matches!(&result, Err(VerifyError::MissingHeader(h)) if h == "stripe-signature"));
        assert_eq!(code(result), "missing_signature");
    }

    #[test]
    fn malformed_headers() {
        let v1 = format!("v1={V1}");
        let cases = [
            String::new(),
            ",,,".to_owned(),
            v1.clone(),                                         // no t
            format!("t={T}"),                                   // no v1
            format!("t=,{v1}"),                                 // empty t
            format!("t=abc,{v1}"),                              // not a number
            format!("t=-5,{v1}"),                               // signed
            format!("t=+5,{v1}"),                               // signed
            format!("t= {T},{v1}"),                             // spaces are not trimmed
            format!("t=99999999999999999999,{v1}"),             // overflows i64
            format!("t={T},t={T},{v1}"),                        // ambiguous
            format!("t={T},v1=zz{}", &V1[2..]),                 // not hex
            format!("t={T},v1={}", &V1[1..]),                   // odd length
            format!("t={T},v1={}", &V1[2..]),                   // too short
            format!("t={T},v1={V1}00"),                         // too long
            format!("t={T},v1="),                               // empty
            format!("t={T},v1={}", "a".repeat(MAX_HEADER_LEN)), // huge
        ];
        for header in cases {
            let result = stripe(&header, &[SECRET], T);
            assert_eq!(code(result), "malformed_signature", "header {header:?}");
        }
    }

    #[test]
    fn too_many_signatures_are_malformed() {
        let entries = vec![format!("v1={V1}"); MAX_SIGNATURES];
        let header = format!("t={T},{}", entries.join(","));
        stripe(&header, &[SECRET], T).unwrap();
        let header = format!("{header},v1={V1}");
        assert_eq!(code(stripe(&header, &[SECRET], T)), "malformed_signature");
    }

    #[test]
    fn non_utf8_body_is_signed_as_raw_bytes() {
        let body = b"\xc3\x28 invalid";
        let signed = sign(&Scheme::Stripe, &Secret::new(SECRET), body, T, "").unwrap();
        let h = headers(&[("Stripe-Signature", &signed[0].1)]);
        let v = verifier(Scheme::Stripe, &[SECRET]);
        verify(&v, &h, "", body, T).unwrap();
        let other = verify(&v, &h, "", b"\xc3\x29 invalid", T);
        assert_eq!(code(other), "signature_mismatch");
    }
}
