//! A shared secret in the query string, `?token=…`: Mailchimp's own advice for its unsigned
//! audience webhooks.

use sha2::{Digest, Sha256};
use subtle::{Choice, ConstantTimeEq};

use super::{Request, Secret, SignError, VerifyError, form, malformed};

const PARAM: &str = "token";

/// The URL-decoded `token` parameter against each secret. Both sides are hashed first, so
/// the comparison is constant-time over equal lengths and does not leak the secret's length.
pub(super) fn verify<S: AsRef<[u8]>>(req: &Request<'_>, secrets: &[S]) -> Result<(), VerifyError> {
    let query = req.query.strip_prefix('?').unwrap_or(req.query);
    let pairs = form::pairs(query.as_bytes())
        .ok_or_else(|| malformed("query string is not valid UTF-8 once URL-decoded"))?;
    let mut tokens = pairs.iter().filter(|(key, _)| key == PARAM);
    let (_, token) = tokens.next().ok_or(VerifyError::MissingToken)?;
    if tokens.next().is_some() {
        return Err(malformed("more than one `token` query parameter"));
    }
    let offered = Sha256::digest(token.as_bytes());
    let mut matched = Choice::from(0);
    for secret in secrets {
        matched |= Sha256::digest(secret.as_ref()).ct_eq(&offered);
    }
    if bool::from(matched) {
        Ok(())
    } else {
        Err(VerifyError::Mismatch)
    }
}

/// `("query", "token=<urlencoded secret>")`: append it to the URL.
pub(super) fn sign(secret: &Secret) -> Result<Vec<(String, String)>, SignError> {
    if secret.expose().is_empty() {
        return Err(SignError::InvalidSecret("secret is empty"));
    }
    let query = serde_urlencoded::to_string([(PARAM, secret.expose())])
        .map_err(|_| SignError::InvalidSecret("cannot be URL-encoded"))?;
    Ok(vec![("query".to_owned(), query)])
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::*;

    fn check(query: &str) -> Result<(), VerifyError> {
        let v = verifier(Scheme::Token, &["old", "s3cr3t/+ &="]);
        verify(&v, &HeaderMap::new(), query, b"", 0)
    }

    #[test]
    fn any_secret_matches_url_decoded() {
        check("token=old").unwrap();
        check("?a=1&token=s3cr3t%2F%2B+%26%3D").unwrap();
    }

    #[test]
    fn wrong_missing_or_ambiguous() {
        for query in [
            "token=nope",
            "token=",
            "token=ol",
            "token=old%20",
            "token=OLD",
        ] {
            assert_eq!(code(check(query)), "signature_mismatch", "{query}");
        }
        for query in ["", "tokens=old", "Token=old", "a=token"] {
            let result = check(query);
            assert!(matches!(result, Err(VerifyError::MissingToken)), "{query}");
            assert_eq!(code(result), "missing_signature");
        }
        for query in ["token=old&token=old", "token=%FF", "x=%C3&token=old"] {
            assert_eq!(code(check(query)), "malformed_signature", "{query}");
        }
    }

    #[test]
    fn an_empty_secret_never_matches() {
        let v = verifier(Scheme::Token, &[""]);
        let result = verify(&v, &HeaderMap::new(), "token=", b"", 0);
        assert_eq!(code(result), "invalid_secret");
        assert!(matches!(
            sign(&Scheme::Token, &Secret::new(""), b"", 0, ""),
            Err(SignError::InvalidSecret(_))
        ));
    }

    #[test]
    fn sign_url_encodes() {
        let signed = sign(&Scheme::Token, &Secret::new("a b&c=d/é"), b"", 0, "").unwrap();
        assert_eq!(
            signed,
            [("query".to_owned(), "token=a+b%26c%3Dd%2F%C3%A9".to_owned())]
        );
    }
}
