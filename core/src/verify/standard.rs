//! Standard Webhooks (and Svix): `webhook-id`, `webhook-timestamp`, `webhook-signature`
//! (space-separated `v1,<base64>` entries), HMAC-SHA256 over `"{id}.{ts}.{body}"` keyed
//! with the base64-decoded secret after `whsec_`.

use std::borrow::Cow;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{
    Alg, BASE64_LENIENT, Claim, Encoding, Request, VerifyError, decode_signature, header, hmac,
    malformed, parse_timestamp, push_candidate,
};

const ID: &str = "webhook-id";
const TIMESTAMP: &str = "webhook-timestamp";
const SIGNATURE: &str = "webhook-signature";
const SVIX_ID: &str = "svix-id";
const SVIX_TIMESTAMP: &str = "svix-timestamp";
const SVIX_SIGNATURE: &str = "svix-signature";
const SECRET_PREFIX: &str = "whsec_";

/// The HMAC key in a `whsec_<base64>` secret; a secret without the prefix is base64 too.
pub(super) fn key(secret: &str) -> Result<Vec<u8>, &'static str> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    match BASE64_LENIENT.decode(encoded) {
        Ok(key) if !key.is_empty() => Ok(key),
        Ok(_) => Err("standard-webhooks secret has no key after `whsec_`"),
        Err(_) => Err("standard-webhooks secret is not `whsec_` followed by base64"),
    }
}

fn message<'a>(id: &'a str, ts: &'a str, body: &'a [u8]) -> Vec<Cow<'a, [u8]>> {
    vec![
        Cow::Borrowed(id.as_bytes()),
        Cow::Borrowed(b"."),
        Cow::Borrowed(ts.as_bytes()),
        Cow::Borrowed(b"."),
        Cow::Borrowed(body),
    ]
}

/// Each `webhook-*` header falls back to its `svix-*` name, as Svix's libraries do. Only
/// `v1` (HMAC-SHA256) entries are ours; others, such as `v1a` (Ed25519), are skipped.
pub(super) fn claim<'a>(req: &Request<'a>) -> Result<Claim<'a>, VerifyError> {
    let either = |name: &'static str, svix: &'static str| -> Result<&'a str, VerifyError> {
        match header(req.headers, name)? {
            Some(value) => Ok(value),
            None => {
                header(req.headers, svix)?.ok_or(VerifyError::MissingHeader(Cow::Borrowed(name)))
            }
        }
    };
    let id = either(ID, SVIX_ID)?;
    let ts = either(TIMESTAMP, SVIX_TIMESTAMP)?;
    let signatures = either(SIGNATURE, SVIX_SIGNATURE)?;
    if id.is_empty() {
        return Err(malformed("`webhook-id` is empty"));
    }
    let timestamp = parse_timestamp(ts, "`webhook-timestamp`")?;
    let mut candidates = Vec::new();
    for entry in signatures.split(' ') {
        if let Some(("v1", sig)) = entry.split_once(',') {
            let sig = decode_signature(sig, Encoding::Base64, Alg::Sha256, "a `v1` signature")?;
            push_candidate(&mut candidates, sig)?;
        }
    }
    if candidates.is_empty() {
        return Err(malformed("`webhook-signature` has no `v1` signature"));
    }
    Ok(Claim {
        alg: Alg::Sha256,
        message: message(id, ts, req.body),
        candidates,
        timestamp: Some(timestamp),
    })
}

pub(super) fn sign(key: &[u8], body: &[u8], ts: &str, id: &str) -> Vec<(String, String)> {
    let mac = hmac(Alg::Sha256, key, &message(id, ts, body));
    vec![
        (ID.to_owned(), id.to_owned()),
        (TIMESTAMP.to_owned(), ts.to_owned()),
        (SIGNATURE.to_owned(), format!("v1,{}", STANDARD.encode(mac))),
    ]
}

#[cfg(test)]
mod tests {
    use super::super::test_util::*;
    use super::super::*;
    use http::HeaderValue;

    struct Vector {
        key: &'static str,
        id: &'static str,
        ts: i64,
        body: &'static [u8],
        sig: &'static str,
    }

    // docs/vendors.md (from the Standard Webhooks spec repository); also recomputed with
    // Python's hmac module.
    const VECTORS: [Vector; 2] = [
        Vector {
            key: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            id: "msg_p5jXN8AQM9LWM0D4loKWxJek",
            ts: 1_614_265_330,
            body: br#"{"test": 2432232314}"#,
            sig: "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
        },
        Vector {
            key: "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
            id: "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            ts: 1_649_367_553,
            body: br#"{"email":"test@example.com","username":"test_user"}"#,
            sig: "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw=",
        },
    ];

    const NAMES: [&str; 3] = ["webhook-id", "webhook-timestamp", "webhook-signature"];

    fn with(names: [&str; 3], vector: &Vector, sig: &str) -> HeaderMap {
        let ts = vector.ts.to_string();
        headers(&[(names[0], vector.id), (names[1], &ts), (names[2], sig)])
    }

    fn check(
        secrets: &[&str],
        h: &HeaderMap,
        vector: &Vector,
        now: i64,
    ) -> Result<(), VerifyError> {
        verify(
            &verifier(Scheme::StandardWebhooks, secrets),
            h,
            "",
            vector.body,
            now,
        )
    }

    #[test]
    fn vectors_verify_and_sign() {
        for v in &VECTORS {
            check(&[v.key], &with(NAMES, v, v.sig), v, v.ts).unwrap();
            let signed = sign(
                &Scheme::StandardWebhooks,
                &Secret::new(v.key),
                v.body,
                v.ts,
                v.id,
            )
            .unwrap();
            let expected = [
                ("webhook-id".to_owned(), v.id.to_owned()),
                ("webhook-timestamp".to_owned(), v.ts.to_string()),
                ("webhook-signature".to_owned(), v.sig.to_owned()),
            ];
            assert_eq!(signed, expected);
        }
    }

    #[test]
    fn svix_names_are_accepted() {
        let v = &VECTORS[0];
        let h = with(["svix-id", "svix-timestamp", "svix-signature"], v, v.sig);
        check(&[v.key], &h, v, v.ts).unwrap();
    }

    #[test]
    fn missing_headers() {
        let v = &VECTORS[0];
        for missing in NAMES {
            let mut h = with(NAMES, v, v.sig);
            h.remove(missing);
            let result = check(&[v.key], &h, v, v.ts);
            assert!(matches!(&result, Err(VerifyError::MissingHeader(name)) if name == missing));
            assert_eq!(code(result), "missing_signature");
        }
    }

    #[test]
    fn other_versions_are_skipped() {
        let v = &VECTORS[0];
        let ed25519 = "v1a,hnO3f9T8Ytu9HwrXslvumlUpqtNVqkhqw/enGzPCXe5BdqzCInXqYXFymVJaA7AZdpXwVLPo3mNl8EM+m7TBAg==";
        let mixed = format!("{ed25519}  v2,abc nocomma {}", v.sig);
        check(&[v.key], &with(NAMES, v, &mixed), v, v.ts).unwrap();
        let only_v1a = check(&[v.key], &with(NAMES, v, ed25519), v, v.ts);
        assert_eq!(code(only_v1a), "malformed_signature");
    }

    #[test]
    fn malformed_headers() {
        let v = &VECTORS[0];
        let unpadded = v.sig.trim_end_matches('=');
        for sig in ["", " ", "v1,", "v1,not base64!", "v1,AAAA", unpadded] {
            let result = check(&[v.key], &with(NAMES, v, sig), v, v.ts);
            assert_eq!(code(result), "malformed_signature", "{sig:?}");
        }
        for ts in ["", "abc", "-1", "1.5", " 1", "99999999999999999999"] {
            let h = headers(&[(NAMES[0], v.id), (NAMES[1], ts), (NAMES[2], v.sig)]);
            assert_eq!(
                code(check(&[v.key], &h, v, v.ts)),
                "malformed_signature",
                "{ts:?}"
            );
        }
        let h = headers(&[(NAMES[0], ""), (NAMES[1], "1"), (NAMES[2], v.sig)]);
        assert_eq!(code(check(&[v.key], &h, v, 1)), "malformed_signature");
    }

    #[test]
    fn tolerance_and_mismatch() {
        let v = &VECTORS[1];
        let h = with(NAMES, v, v.sig);
        check(&[v.key], &h, v, v.ts + 300).unwrap();
        check(&[v.key], &h, v, v.ts - 300).unwrap();
        for now in [v.ts + 301, v.ts - 301] {
            assert_eq!(
                code(check(&[v.key], &h, v, now)),
                "timestamp_out_of_tolerance"
            );
        }
        let other = check(&[VECTORS[0].key], &h, v, v.ts);
        assert_eq!(code(other), "signature_mismatch");
        // Rotation: the second secret matches.
        check(&[VECTORS[0].key, v.key], &h, v, v.ts).unwrap();
        // The id is signed: another id does not pass.
        let mut h = h;
        h.insert("webhook-id", HeaderValue::from_static("msg_other"));
        assert_eq!(code(check(&[v.key], &h, v, v.ts)), "signature_mismatch");
    }

    #[test]
    fn secret_forms() {
        let v = &VECTORS[0];
        let h = with(NAMES, v, v.sig);
        // Without the prefix the secret is still base64.
        check(&[v.key.trim_start_matches("whsec_")], &h, v, v.ts).unwrap();
        // An unusable secret next to a usable one is skipped…
        check(&["whsec_!!!", v.key], &h, v, v.ts).unwrap();
        // …but alone it is an operator error, and `check` reports it either way.
        for bad in ["whsec_!!!", "whsec_", "not base64!", ""] {
            let err = check(&[bad], &h, v, v.ts).unwrap_err();
            assert_eq!(err.code(), "invalid_secret", "{bad:?}");
            assert!(err.is_config_error());
            let both = verifier(Scheme::StandardWebhooks, &[v.key, bad]);
            assert!(matches!(both.check(), Err(VerifyError::InvalidSecret(_))));
            let signed = sign(&Scheme::StandardWebhooks, &Secret::new(bad), b"", 1, "msg");
            assert!(matches!(signed, Err(SignError::InvalidSecret(_))));
        }
    }

    #[test]
    fn sign_needs_a_usable_msg_id() {
        let secret = Secret::new(VECTORS[0].key);
        for id in ["", "bad\nid", "ü", &"a".repeat(MAX_HEADER_LEN + 1)] {
            let signed = sign(&Scheme::StandardWebhooks, &secret, b"", 1, id);
            assert!(matches!(signed, Err(SignError::InvalidMsgId)));
        }
    }
}
