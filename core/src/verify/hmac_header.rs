//! One header holding HMAC-SHA256 of the raw body: GitHub (`X-Hub-Signature-256:
//! sha256=<hex>`) and the generic `hmac-sha256` scheme (e.g. Shopify's base64
//! `X-Shopify-Hmac-Sha256`).

use std::borrow::Cow;

use super::{
    Alg, Claim, Encoding, Request, VerifyError, decode_signature, encode, header, hmac, malformed,
};

const GITHUB_HEADER: &str = "X-Hub-Signature-256";
const GITHUB_PREFIX: &str = "sha256=";

pub(super) fn github_claim<'a>(req: &Request<'a>) -> Result<Claim<'a>, VerifyError> {
    claim(req, GITHUB_HEADER, Encoding::Hex, GITHUB_PREFIX)
}

pub(super) fn github_sign(key: &[u8], body: &[u8]) -> Vec<(String, String)> {
    sign(key, body, GITHUB_HEADER, Encoding::Hex, GITHUB_PREFIX)
}

/// `name` must hold `prefix` (exactly, case-sensitive) then one encoded digest.
pub(super) fn claim<'a>(
    req: &Request<'a>,
    name: &str,
    encoding: Encoding,
    prefix: &str,
) -> Result<Claim<'a>, VerifyError> {
    let value = header(req.headers, name)?
        .ok_or_else(|| VerifyError::MissingHeader(Cow::Owned(name.to_ascii_lowercase())))?;
    let encoded = value
        .strip_prefix(prefix)
        .ok_or_else(|| malformed(format!("`{name}` does not start with the expected prefix")))?;
    let candidate = decode_signature(encoded, encoding, Alg::Sha256, &format!("`{name}`"))?;
    Ok(Claim {
        alg: Alg::Sha256,
        message: vec![Cow::Borrowed(req.body)],
        candidates: vec![candidate],
        timestamp: None,
    })
}

pub(super) fn sign(
    key: &[u8],
    body: &[u8],
    name: &str,
    encoding: Encoding,
    prefix: &str,
) -> Vec<(String, String)> {
    let mac = hmac(Alg::Sha256, key, &[Cow::Borrowed(body)]);
    vec![(
        name.to_owned(),
        format!("{prefix}{}", encode(encoding, &mac)),
    )]
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::*;

    const GITHUB_SECRET: &str = "It's a Secret to Everybody";
    const GITHUB_BODY: &[u8] = b"Hello, World!";
    // docs/vendors.md (GitHub's docs); also recomputed with Python's hmac module.
    const GITHUB_SIG: &str =
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    const SHOPIFY_BODY: &[u8] = br#"{"id":1}"#;
    const SHOPIFY_SIG: &str = "VnKUjZsLuN5iZWjn5EntcBVCF9kMN43LglzCE1/GSeY=";

    fn github(value: &str, body: &[u8]) -> Result<(), VerifyError> {
        let h = headers(&[("X-Hub-Signature-256", value)]);
        verify(&verifier(Scheme::Github, &[GITHUB_SECRET]), &h, "", body, 0)
    }

    #[test]
    fn github_vector() {
        github(GITHUB_SIG, GITHUB_BODY).unwrap();
        let signed = sign(
            &Scheme::Github,
            &Secret::new(GITHUB_SECRET),
            GITHUB_BODY,
            0,
            "",
        );
        let expected = [("X-Hub-Signature-256".to_owned(), GITHUB_SIG.to_owned())];
        assert_eq!(signed.unwrap(), expected);
    }

    #[test]
    fn github_malformed_missing_and_mismatch() {
        let hex = GITHUB_SIG.trim_start_matches("sha256=");
        for value in [
            hex.to_owned(),
            format!("sha1={hex}"),
            format!("SHA256={hex}"),
            "sha256=".to_owned(),
            format!("sha256=x{}", &hex[1..]),
            format!("sha256={hex}00"),
        ] {
            assert_eq!(
                code(github(&value, GITHUB_BODY)),
                "malformed_signature",
                "{value}"
            );
        }
        let v = verifier(Scheme::Github, &[GITHUB_SECRET]);
        let missing = verify(&v, &HeaderMap::new(), "", GITHUB_BODY, 0);
        assert!(
            matches!(&missing, Err(VerifyError::MissingHeader(h)) if h == "x-hub-signature-256")
        );
        assert_eq!(code(missing), "missing_signature");
        assert_eq!(
            code(github(GITHUB_SIG, b"Hello, World?")),
            "signature_mismatch"
        );
    }

    #[test]
    fn shopify_vector_via_generic_scheme() {
        // Lookup is case-insensitive whatever case the config uses.
        let h = headers(&[("x-shopify-hmac-sha256", SHOPIFY_SIG)]);
        verify(&verifier(shopify(), &["hush"]), &h, "", SHOPIFY_BODY, 0).unwrap();
        let signed = sign(&shopify(), &Secret::new("hush"), SHOPIFY_BODY, 0, "").unwrap();
        assert_eq!(
            signed,
            [("X-Shopify-Hmac-Sha256".to_owned(), SHOPIFY_SIG.to_owned())]
        );
        // Rotation: the second secret matches.
        verify(
            &verifier(shopify(), &["old", "hush"]),
            &h,
            "",
            SHOPIFY_BODY,
            0,
        )
        .unwrap();
        let wrong = verify(&verifier(shopify(), &["hush!"]), &h, "", SHOPIFY_BODY, 0);
        assert_eq!(code(wrong), "signature_mismatch");
    }

    #[test]
    fn generic_missing_header_and_bad_config() {
        let missing = verify(
            &verifier(shopify(), &["hush"]),
            &HeaderMap::new(),
            "",
            b"",
            0,
        );
        assert!(
            matches!(&missing, Err(VerifyError::MissingHeader(h)) if h == "x-shopify-hmac-sha256")
        );
        let bad = Scheme::HmacSha256 {
            header: "not a header".to_owned(),
            encoding: Encoding::Hex,
            prefix: String::new(),
        };
        let v = verifier(bad.clone(), &["hush"]);
        let err = verify(&v, &HeaderMap::new(), "", b"", 0).unwrap_err();
        assert_eq!(err.code(), "invalid_signature_config");
        assert!(err.is_config_error());
        assert!(matches!(v.check(), Err(VerifyError::InvalidConfig(_))));
        let signed = sign(&bad, &Secret::new("hush"), b"", 0, "");
        assert!(matches!(signed, Err(SignError::InvalidHeader(_))));
        let bad_prefix = Scheme::HmacSha256 {
            header: "X-Sig".to_owned(),
            encoding: Encoding::Hex,
            prefix: "é".to_owned(),
        };
        let signed = sign(&bad_prefix, &Secret::new("hush"), b"", 0, "");
        assert!(matches!(signed, Err(SignError::InvalidHeader(_))));
    }
}
