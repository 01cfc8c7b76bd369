//! Mailchimp Transactional (Mandrill): `X-Mandrill-Signature` = base64 HMAC-SHA1 over the
//! configured URL, then each POST field's key and value, keys sorted.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{
    Alg, Claim, Encoding, Request, SignError, VerifyError, decode_signature, form, hmac, malformed,
    required_header,
};

const HEADER: &str = "x-mandrill-signature";

/// `public_url`, then each field's key and value (URL-decoded), keys sorted bytewise. A
/// repeated key is rejected: Mandrill's PHP reference would sign only its last value, and a
/// consumer that reads the first one could then be handed a value nobody signed.
fn message<'a>(public_url: &'a str, body: &[u8]) -> Result<Vec<Cow<'a, [u8]>>, &'static str> {
    let mut fields = form::pairs(body).ok_or("form body is not valid UTF-8 once URL-decoded")?;
    fields.sort_by(|a, b| a.0.cmp(&b.0));
    if fields.windows(2).any(|pair| pair[0].0 == pair[1].0) {
        return Err("form body repeats a field");
    }
    let mut message = Vec::with_capacity(1 + 2 * fields.len());
    message.push(Cow::Borrowed(public_url.as_bytes()));
    for (key, value) in fields {
        message.push(Cow::Owned(key.into_bytes()));
        message.push(Cow::Owned(value.into_bytes()));
    }
    Ok(message)
}

pub(super) fn claim<'a>(req: &Request<'a>, public_url: &'a str) -> Result<Claim<'a>, VerifyError> {
    let value = required_header(req.headers, HEADER)?;
    let candidate = decode_signature(value, Encoding::Base64, Alg::Sha1, "`x-mandrill-signature`")?;
    let message = message(public_url, req.body).map_err(malformed)?;
    Ok(Claim {
        alg: Alg::Sha1,
        message,
        candidates: vec![candidate],
        timestamp: None,
    })
}

pub(super) fn sign(
    key: &[u8],
    body: &[u8],
    public_url: &str,
) -> Result<Vec<(String, String)>, SignError> {
    let message = message(public_url, body).map_err(SignError::MalformedBody)?;
    let mac = hmac(Alg::Sha1, key, &message);
    Ok(vec![(
        "X-Mandrill-Signature".to_owned(),
        STANDARD.encode(mac),
    )])
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::*;

    // docs/vendors.md: the POST Mandrill sends when a webhook is set up. Also recomputed with
    // Python's hmac module over "https://example.com/hooks/mandrillmandrill_events[]".
    const KEY: &str = "test-webhook";
    const BODY: &[u8] = b"mandrill_events=%5B%5D";
    const SIG: &str = "jWoiNB5OCBcQUocCXvoaC1r32kM=";

    fn check(sig: &str, body: &[u8]) -> Result<(), VerifyError> {
        let h = headers(&[("X-Mandrill-Signature", sig)]);
        verify(&verifier(mandrill(), &[KEY]), &h, "", body, 0)
    }

    #[test]
    fn vector() {
        check(SIG, BODY).unwrap();
        let signed = sign(&mandrill(), &Secret::new(KEY), BODY, 0, "").unwrap();
        assert_eq!(
            signed,
            [("X-Mandrill-Signature".to_owned(), SIG.to_owned())]
        );
    }

    #[test]
    fn fields_are_sorted_and_decoded() {
        // Built independently: HMAC-SHA1 over URL + "a" + "x y" + "b" + "[é]".
        let body = "b=%5B%C3%A9%5D&a=x+y".as_bytes();
        let signed = format!("{MANDRILL_URL}ax yb[é]");
        let mac = hmac(
            Alg::Sha1,
            KEY.as_bytes(),
            &[Cow::Borrowed(signed.as_bytes())],
        );
        check(&STANDARD.encode(mac), body).unwrap();
    }

    #[test]
    fn hostile_bodies() {
        for body in [
            &b"mandrill_events=%FF"[..], // decodes to invalid UTF-8
            b"mandrill_events=\xff",     // raw invalid UTF-8
            b"mandrill_events=%5B%5D&mandrill_events=%5B%5D", // a repeated field
        ] {
            assert_eq!(code(check(SIG, body)), "malformed_signature", "{body:?}");
        }
        // Odd but decodable bodies are simply not what was signed.
        for body in [&b""[..], b"&&", b"%", b"%zz=%4", b"mandrill_events=[]x"] {
            assert_eq!(code(check(SIG, body)), "signature_mismatch", "{body:?}");
        }
        let signed = sign(&mandrill(), &Secret::new(KEY), b"a=%FF", 0, "");
        assert!(matches!(signed, Err(SignError::MalformedBody(_))));
    }

    #[test]
    fn header_problems_and_mismatch() {
        assert_eq!(code(check("not base64", BODY)), "malformed_signature");
        assert_eq!(code(check("AAAA", BODY)), "malformed_signature"); // not 20 bytes
        let v = verifier(mandrill(), &[KEY]);
        assert_eq!(
            code(verify(&v, &HeaderMap::new(), "", BODY, 0)),
            "missing_signature"
        );
        // The signature covers the configured URL.
        let elsewhere = Scheme::Mandrill {
            public_url: "https://example.com/other".to_owned(),
        };
        let h = headers(&[("X-Mandrill-Signature", SIG)]);
        let result = verify(&verifier(elsewhere, &[KEY]), &h, "", BODY, 0);
        assert_eq!(code(result), "signature_mismatch");
        // Rotation: the second key matches.
        verify(&verifier(mandrill(), &["other", KEY]), &h, "", BODY, 0).unwrap();
    }
}
