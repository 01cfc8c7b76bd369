//! Webhook signature schemes: check that a received request was signed by the vendor, and
//! produce the headers that sign a payload (for `switchyard sign` and outbound deliveries).
//!
//! Every scheme takes the same path. [`Verifier::verify`] turns the operator's secrets into
//! keys, the scheme's module parses the request into a `Claim` (the bytes the vendor
//! signed, the signatures it offers and, for timestamped schemes, its timestamp), and
//! `Claim::check` compares the HMAC of the message under every key with every offered
//! signature in constant time. Only an authentic request has its timestamp checked, so
//! `timestamp_out_of_tolerance` always means "genuine but too old or too new" (a replay or
//! clock skew), never a forgery. [`sign`] builds the message with the same function as the
//! parser, so signing and verifying cannot drift apart.
//!
//! # Layout
//! One module per scheme, each with its vendor's test vectors: `stripe`, `standard`
//! (Standard Webhooks and Svix), `hmac_header` (GitHub and the generic `hmac-sha256`),
//! `mandrill` and `token`; `form` parses URL-encoded bytes for the last two.
//! Wire formats, test vectors and the table of schemes: `docs/vendors.md`.
//!
//! # Hostile input
//! Header values are capped at [`MAX_HEADER_LEN`] and must be visible ASCII; a request may
//! offer at most [`MAX_SIGNATURES`] signatures; bodies are raw bytes. Error text never holds
//! a secret, a computed signature or any value taken from the request (which could carry
//! control characters into logs): only header names, parsed timestamps and our own words.

mod form;
mod hmac_header;
mod mandrill;
mod standard;
mod stripe;
mod token;

#[cfg(test)]
mod props;
#[cfg(test)]
mod test_util;

use std::borrow::Cow;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::DecodePaddingMode;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use hmac::{Hmac, Mac};
use http::{HeaderMap, HeaderName};
use sha1::Sha1;
use sha2::Sha256;
use subtle::{Choice, ConstantTimeEq};

use crate::secret::Secret;

/// How far a signed timestamp may be from the current time when the config does not say.
/// Stripe's libraries and the Standard Webhooks reference libraries both use 5 minutes.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// The longest signature-related header value we parse; a longer one is `Malformed`.
/// Real headers stay well under 1 KiB, even with several rotated signatures.
pub const MAX_HEADER_LEN: usize = 8 * 1024;

/// The most signatures one request may offer; more are `Malformed`. Vendors send one, or
/// two while a secret is being rotated.
pub const MAX_SIGNATURES: usize = 16;

/// How the generic `hmac-sha256` scheme writes the digest in its header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
}

/// A signature scheme, as declared by a connector or overridden in `switchyard.toml`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scheme {
    /// `Stripe-Signature: t=…,v1=…`; the key is the secret as given, `whsec_` included.
    /// Timestamps are checked in both directions: see [`Verifier::verify`].
    Stripe,
    /// `webhook-id`, `webhook-timestamp`, `webhook-signature`, or the same with `svix-`;
    /// the key is the base64 after `whsec_` (a secret without the prefix is base64 too).
    StandardWebhooks,
    /// `X-Hub-Signature-256: sha256=<hex>` over the raw body.
    Github,
    /// HMAC-SHA256 of the raw body in `header`, written as `prefix` then the digest in
    /// `encoding`. Shopify: `X-Shopify-Hmac-Sha256`, base64, no prefix.
    HmacSha256 {
        header: String,
        encoding: Encoding,
        prefix: String,
    },
    /// `X-Mandrill-Signature` over `public_url`, which must be the exact URL configured at
    /// Mandrill (what the sender signs), not the URL the request arrived on behind a proxy.
    Mandrill { public_url: String },
    /// The secret in the query string as `?token=…` (Mailchimp, whose webhooks are unsigned).
    Token,
    /// No check at all; only when an operator writes it explicitly.
    None,
}

/// Why a scheme name does not give a [`Scheme`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SchemeNameError {
    /// Not one of the names in [`Scheme::name`].
    Unknown(String),
    /// `hmac-sha256` without its header/encoding/prefix.
    NeedsHmac,
    /// `mandrill` without the public URL it signs.
    NeedsPublicUrl,
}

/// The parameters of the generic `hmac-sha256` scheme.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacParams {
    pub header: String,
    pub encoding: Encoding,
    pub prefix: String,
}

impl Scheme {
    /// The scheme called `name` (as in config files and `switchyard sign --scheme`), with the
    /// parameters the parameterised schemes need. Callers word the errors for their users.
    pub fn from_name(
        name: &str,
        hmac: Option<HmacParams>,
        public_url: Option<String>,
    ) -> Result<Scheme, SchemeNameError> {
        Ok(match name {
            "stripe" => Scheme::Stripe,
            "standard-webhooks" => Scheme::StandardWebhooks,
            "github" => Scheme::Github,
            "hmac-sha256" => {
                let HmacParams {
                    header,
                    encoding,
                    prefix,
                } = hmac.ok_or(SchemeNameError::NeedsHmac)?;
                Scheme::HmacSha256 {
                    header,
                    encoding,
                    prefix,
                }
            }
            "mandrill" => Scheme::Mandrill {
                public_url: public_url.ok_or(SchemeNameError::NeedsPublicUrl)?,
            },
            "token" => Scheme::Token,
            "none" => Scheme::None,
            other => return Err(SchemeNameError::Unknown(other.to_string())),
        })
    }

    /// The name used in config files and the admin API.
    pub fn name(&self) -> &'static str {
        match self {
            Scheme::Stripe => "stripe",
            Scheme::StandardWebhooks => "standard-webhooks",
            Scheme::Github => "github",
            Scheme::HmacSha256 { .. } => "hmac-sha256",
            Scheme::Mandrill { .. } => "mandrill",
            Scheme::Token => "token",
            Scheme::None => "none",
        }
    }
}

/// The parts of a received request that signatures cover.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub headers: &'a HeaderMap,
    /// The raw query string, without the leading `?` (one is tolerated).
    pub query: &'a str,
    /// The body exactly as received.
    pub body: &'a [u8],
}

/// A connector's scheme with its secrets.
#[derive(Debug, Clone)]
pub struct Verifier {
    pub scheme: Scheme,
    /// Any one may match: while rotating, list both the new and the old secret.
    pub secrets: Vec<Secret>,
    /// How far a signed timestamp may be from `now`, either way; whole seconds count.
    pub tolerance: Duration,
}

impl Verifier {
    pub fn new(scheme: Scheme, secrets: Vec<Secret>, tolerance: Duration) -> Self {
        Verifier {
            scheme,
            secrets,
            tolerance,
        }
    }

    /// Ok when any secret matches. `now` is unix seconds (injected for tests).
    ///
    /// For the timestamped schemes (`stripe`, `standard-webhooks`) the signed timestamp must
    /// be within `tolerance` of `now` in *both* directions. Stripe's own libraries accept any
    /// future timestamp; we reject one more than `tolerance` ahead as well, because a
    /// signature dated in the future would otherwise stay replayable until that date, and a
    /// genuine sender's clock is never minutes ahead. The timestamp is checked only after a
    /// signature matched.
    ///
    /// A secret that cannot be a key (empty, or not base64 for `standard-webhooks`) is
    /// skipped while another one can be; [`Verifier::check`] reports it up front.
    pub fn verify(&self, req: &Request<'_>, now: i64) -> Result<(), VerifyError> {
        if self.scheme == Scheme::None {
            return Ok(());
        }
        let keys = self.keys()?;
        let claim = match &self.scheme {
            Scheme::Stripe => stripe::claim(req)?,
            Scheme::StandardWebhooks => standard::claim(req)?,
            Scheme::Github => hmac_header::github_claim(req)?,
            Scheme::HmacSha256 {
                header,
                encoding,
                prefix,
            } => {
                let name = valid_header_name(header)?;
                hmac_header::claim(req, name, *encoding, prefix)?
            }
            Scheme::Mandrill { public_url } => mandrill::claim(req, public_url)?,
            Scheme::Token => return token::verify(req, &keys),
            Scheme::None => return Ok(()),
        };
        claim.check(&keys, now, self.tolerance)
    }

    /// Validate the configuration without a request (for `switchyard check` and at load):
    /// a valid header name for `hmac-sha256`, and unless the scheme is `none` at least one
    /// secret, each of them usable as a key.
    pub fn check(&self) -> Result<(), VerifyError> {
        if let Scheme::HmacSha256 { header, .. } = &self.scheme {
            valid_header_name(header)?;
        }
        if self.scheme == Scheme::None {
            return Ok(());
        }
        if self.secrets.is_empty() {
            return Err(VerifyError::NoSecret);
        }
        for secret in &self.secrets {
            key_for(&self.scheme, secret).map_err(VerifyError::InvalidSecret)?;
        }
        Ok(())
    }

    /// The key of every usable secret (for `token`, the expected token).
    fn keys(&self) -> Result<Vec<Cow<'_, [u8]>>, VerifyError> {
        if self.secrets.is_empty() {
            return Err(VerifyError::NoSecret);
        }
        let mut keys = Vec::with_capacity(self.secrets.len());
        let mut problem = None;
        for secret in &self.secrets {
            match key_for(&self.scheme, secret) {
                Ok(key) => keys.push(key),
                Err(reason) => problem = Some(reason),
            }
        }
        match problem {
            Some(reason) if keys.is_empty() => Err(VerifyError::InvalidSecret(reason)),
            _ => Ok(keys),
        }
    }
}

/// Why a request failed verification. [`VerifyError::code`] is the stable code for the JSON
/// error body; the `Display` text is safe to send back and to log.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// A required signature header is absent (its name, lowercase).
    #[error("missing `{0}` header")]
    MissingHeader(Cow<'static, str>),
    /// The `token` query parameter is absent.
    #[error("missing `token` query parameter")]
    MissingToken,
    /// A header, the token or (for mandrill) the form body cannot be parsed.
    #[error("malformed signature: {0}")]
    Malformed(String),
    /// A signature matched, but its timestamp is more than the tolerance from `now`.
    #[error(
        "signed timestamp {timestamp} is more than {tolerance_secs} s away from the current time {now}"
    )]
    Stale {
        timestamp: i64,
        now: i64,
        tolerance_secs: u64,
    },
    /// Well formed, but no signature matched any secret.
    #[error("signature does not match")]
    Mismatch,
    /// The connector has no secret for a scheme that needs one (an operator error).
    #[error("no secret is configured for this connector")]
    NoSecret,
    /// No configured secret can be used as a key (an operator error).
    #[error("configured secret is unusable: {0}")]
    InvalidSecret(&'static str),
    /// The scheme's configuration is unusable (an operator error).
    #[error("invalid signature configuration: {0}")]
    InvalidConfig(String),
}

impl VerifyError {
    /// A stable snake_case code for the JSON error body.
    pub fn code(&self) -> &'static str {
        match self {
            VerifyError::MissingHeader(_) | VerifyError::MissingToken => "missing_signature",
            VerifyError::Malformed(_) => "malformed_signature",
            VerifyError::Stale { .. } => "timestamp_out_of_tolerance",
            VerifyError::Mismatch => "signature_mismatch",
            VerifyError::NoSecret => "no_secret_configured",
            VerifyError::InvalidSecret(_) => "invalid_secret",
            VerifyError::InvalidConfig(_) => "invalid_signature_config",
        }
    }

    /// True when the fault is in our configuration, not in the request: answer 500 and log
    /// it as an error, rather than 401 (which tells the sender its request was bad).
    pub fn is_config_error(&self) -> bool {
        matches!(
            self,
            VerifyError::NoSecret | VerifyError::InvalidSecret(_) | VerifyError::InvalidConfig(_)
        )
    }
}

/// Why [`sign`] could not produce headers.
#[derive(Debug, thiserror::Error)]
pub enum SignError {
    #[error("secret is unusable: {0}")]
    InvalidSecret(&'static str),
    #[error("message id must be non-empty visible ASCII of at most 8 KiB")]
    InvalidMsgId,
    #[error("timestamp must be a non-negative unix time in seconds")]
    InvalidTimestamp,
    #[error("cannot sign this body: {0}")]
    MalformedBody(&'static str),
    #[error("invalid header: {0}")]
    InvalidHeader(String),
}

/// Headers (name, value) that make `body` pass `scheme` with `secret` at time `now`;
/// `msg_id` is used by standard-webhooks (`webhook-id`). For `token` the single pair is
/// `("query", "token=<urlencoded secret>")`, for `none` the list is empty.
/// Used by `switchyard sign` and to sign outbound deliveries.
pub fn sign(
    scheme: &Scheme,
    secret: &Secret,
    body: &[u8],
    now: i64,
    msg_id: &str,
) -> Result<Vec<(String, String)>, SignError> {
    let key = match scheme {
        Scheme::None => return Ok(Vec::new()),
        Scheme::Token => return token::sign(secret),
        _ => key_for(scheme, secret).map_err(SignError::InvalidSecret)?,
    };
    let timestamp = || match now {
        0.. => Ok(now.to_string()),
        _ => Err(SignError::InvalidTimestamp),
    };
    let headers = match scheme {
        Scheme::Stripe => stripe::sign(&key, body, &timestamp()?),
        Scheme::StandardWebhooks => {
            if msg_id.is_empty() || msg_id.len() > MAX_HEADER_LEN || !is_visible_ascii(msg_id) {
                return Err(SignError::InvalidMsgId);
            }
            standard::sign(&key, body, &timestamp()?, msg_id)
        }
        Scheme::Github => hmac_header::github_sign(&key, body),
        Scheme::HmacSha256 {
            header,
            encoding,
            prefix,
        } => hmac_header::sign(&key, body, header, *encoding, prefix),
        Scheme::Mandrill { public_url } => mandrill::sign(&key, body, public_url)?,
        Scheme::Token | Scheme::None => Vec::new(),
    };
    // What we hand out must be something an HTTP client sends and `verify` accepts.
    for (name, value) in &headers {
        if HeaderName::from_bytes(name.as_bytes()).is_err() {
            return Err(SignError::InvalidHeader(format!(
                "`{name}` is not a valid header name"
            )));
        }
        if value.len() > MAX_HEADER_LEN || !is_visible_ascii(value) {
            return Err(SignError::InvalidHeader(format!(
                "the value of `{name}` is not visible ASCII of at most 8 KiB"
            )));
        }
    }
    Ok(headers)
}

// ---------------------------------------------------------------------------------------
// Shared by the scheme modules.

#[derive(Debug, Clone, Copy)]
enum Alg {
    Sha256,
    Sha1,
}

impl Alg {
    /// Bytes in a MAC; an offered signature of another length is `Malformed`.
    fn output_len(self) -> usize {
        match self {
            Alg::Sha256 => 32,
            Alg::Sha1 => 20,
        }
    }
}

/// What a request claims: the bytes the vendor signed (in parts, so the body is not
/// copied), the signatures it offers (decoded, each `alg.output_len()` bytes) and, for
/// timestamped schemes, the signed timestamp.
struct Claim<'a> {
    alg: Alg,
    message: Vec<Cow<'a, [u8]>>,
    candidates: Vec<Vec<u8>>,
    timestamp: Option<i64>,
}

impl Claim<'_> {
    fn check(
        &self,
        keys: &[Cow<'_, [u8]>],
        now: i64,
        tolerance: Duration,
    ) -> Result<(), VerifyError> {
        // Every key against every candidate without stopping at a match, so the time taken
        // does not depend on which secret or which candidate matched.
        let mut matched = Choice::from(0);
        for key in keys {
            let expected = hmac(self.alg, key, &self.message);
            for candidate in &self.candidates {
                matched |= expected.as_slice().ct_eq(candidate.as_slice());
            }
        }
        if !bool::from(matched) {
            return Err(VerifyError::Mismatch);
        }
        match self.timestamp {
            Some(timestamp) => check_timestamp(timestamp, now, tolerance),
            None => Ok(()),
        }
    }
}

fn hmac(alg: Alg, key: &[u8], parts: &[Cow<'_, [u8]>]) -> Vec<u8> {
    // `new_from_slice` only fails for MACs with a fixed key size; HMAC takes any length
    // (longer keys are hashed first), so this cannot fire.
    const ANY_KEY: &str = "HMAC accepts keys of any length";
    match alg {
        Alg::Sha256 => {
            let mut mac = Hmac::<Sha256>::new_from_slice(key).expect(ANY_KEY);
            parts.iter().for_each(|part| mac.update(part));
            mac.finalize().into_bytes().to_vec()
        }
        Alg::Sha1 => {
            let mut mac = Hmac::<Sha1>::new_from_slice(key).expect(ANY_KEY);
            parts.iter().for_each(|part| mac.update(part));
            mac.finalize().into_bytes().to_vec()
        }
    }
}

/// The key bytes of `secret` under `scheme`, or why it cannot be one.
fn key_for<'s>(scheme: &Scheme, secret: &'s Secret) -> Result<Cow<'s, [u8]>, &'static str> {
    let raw = secret.expose();
    if raw.is_empty() {
        // An empty HMAC key, or an empty token, is one everybody knows.
        return Err("secret is empty");
    }
    match scheme {
        Scheme::StandardWebhooks => standard::key(raw).map(Cow::Owned),
        // Stripe's key is the secret as given, `whsec_` included; so are the others'.
        _ => Ok(Cow::Borrowed(raw.as_bytes())),
    }
}

fn valid_header_name(name: &str) -> Result<&str, VerifyError> {
    match HeaderName::from_bytes(name.as_bytes()) {
        Ok(_) => Ok(name),
        Err(_) => Err(VerifyError::InvalidConfig(format!(
            "`{name}` is not a valid header name"
        ))),
    }
}

/// A header as text: absent → `None`; too long or not visible ASCII → `Malformed`.
/// With repeated headers the first counts (every scheme signs a single value).
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<Option<&'a str>, VerifyError> {
    let Some(value) = headers.get(name) else {
        return Ok(None);
    };
    if value.len() > MAX_HEADER_LEN {
        return Err(malformed(format!(
            "`{name}` header is longer than {MAX_HEADER_LEN} bytes"
        )));
    }
    value
        .to_str()
        .map(Some)
        .map_err(|_| malformed(format!("`{name}` header is not visible ASCII")))
}

fn required_header<'a>(headers: &'a HeaderMap, name: &'static str) -> Result<&'a str, VerifyError> {
    header(headers, name)?.ok_or(VerifyError::MissingHeader(Cow::Borrowed(name)))
}

fn malformed(reason: impl Into<String>) -> VerifyError {
    VerifyError::Malformed(reason.into())
}

/// A unix time in seconds: ASCII digits only (no sign, no spaces) that fit an `i64`.
fn parse_timestamp(text: &str, what: &str) -> Result<i64, VerifyError> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return Err(malformed(format!("{what} is not a unix time in seconds")));
    }
    text.parse()
        .map_err(|_| malformed(format!("{what} is out of range")))
}

fn check_timestamp(timestamp: i64, now: i64, tolerance: Duration) -> Result<(), VerifyError> {
    // In i128, `now - timestamp` cannot overflow whatever the two values are.
    let skew = i128::from(now) - i128::from(timestamp);
    if skew.unsigned_abs() > u128::from(tolerance.as_secs()) {
        return Err(VerifyError::Stale {
            timestamp,
            now,
            tolerance_secs: tolerance.as_secs(),
        });
    }
    Ok(())
}

/// Decode one offered signature (strictly: standard base64 with padding), which must be as
/// long as `alg`'s MAC.
fn decode_signature(
    text: &str,
    encoding: Encoding,
    alg: Alg,
    what: &str,
) -> Result<Vec<u8>, VerifyError> {
    let decoded = match encoding {
        Encoding::Hex => hex::decode(text).map_err(|_| malformed(format!("{what} is not hex")))?,
        Encoding::Base64 => STANDARD
            .decode(text)
            .map_err(|_| malformed(format!("{what} is not base64")))?,
    };
    if decoded.len() != alg.output_len() {
        return Err(malformed(format!(
            "{what} is not {} bytes long",
            alg.output_len()
        )));
    }
    Ok(decoded)
}

fn push_candidate(candidates: &mut Vec<Vec<u8>>, candidate: Vec<u8>) -> Result<(), VerifyError> {
    if candidates.len() == MAX_SIGNATURES {
        return Err(malformed(format!("more than {MAX_SIGNATURES} signatures")));
    }
    candidates.push(candidate);
    Ok(())
}

/// What `HeaderValue::to_str` accepts.
fn is_visible_ascii(text: &str) -> bool {
    text.bytes()
        .all(|b| (0x20..0x7f).contains(&b) || b == b'\t')
}

fn encode(encoding: Encoding, mac: &[u8]) -> String {
    match encoding {
        Encoding::Hex => hex::encode(mac),
        Encoding::Base64 => STANDARD.encode(mac),
    }
}

/// Standard base64 that also accepts missing `=` padding, for configured secrets only
/// (operators sometimes paste them without it). Offered signatures are decoded strictly.
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

#[cfg(test)]
mod tests {
    //! Properties every scheme shares; each scheme's vectors live in its own module.

    use super::test_util::*;
    use super::*;
    use http::HeaderValue;

    /// Any valid standard-webhooks secret is also a fine key for the others.
    const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const OTHER: &str = "whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD";
    const NOW: i64 = 1_700_000_000;

    /// Sign with [`sign`], then hand exactly what it produced to [`Verifier::verify`].
    fn round_trip(scheme: &Scheme, verify_with: &[&str], body: &[u8]) -> Result<(), VerifyError> {
        let signed = sign(scheme, &Secret::new(SECRET), body, NOW, "msg_round_trip").unwrap();
        let mut map = HeaderMap::new();
        let mut query = String::new();
        for (name, value) in signed {
            if *scheme == Scheme::Token {
                assert_eq!(name, "query");
                query = value;
            } else {
                let name = HeaderName::from_bytes(name.as_bytes()).unwrap();
                map.append(name, HeaderValue::from_str(&value).unwrap());
            }
        }
        verify(
            &verifier(scheme.clone(), verify_with),
            &map,
            &query,
            body,
            NOW,
        )
    }

    #[test]
    fn sign_then_verify_every_scheme() {
        let bodies: [&[u8]; 4] = [
            b"",
            br#"{"id":"evt_1"}"#,
            b"\xff\xfe\x00 not utf-8 \x80",
            b"mandrill_events=%5B%7B%22event%22%3A%22send%22%7D%5D&z=1&a=%C3%A9",
        ];
        for scheme in all_schemes() {
            let name = scheme.name();
            for body in bodies {
                // Mandrill signs form fields, so bytes that are no form cannot be signed.
                if matches!(scheme, Scheme::Mandrill { .. }) && std::str::from_utf8(body).is_err() {
                    continue;
                }
                round_trip(&scheme, &[SECRET], body)
                    .unwrap_or_else(|e| panic!("{name} {body:?}: {e}"));
                // Rotation: the second secret matches.
                round_trip(&scheme, &[OTHER, SECRET], body).unwrap();
                let wrong = round_trip(&scheme, &[OTHER], body);
                let expected = if scheme == Scheme::None {
                    "ok"
                } else {
                    "signature_mismatch"
                };
                assert_eq!(code(wrong), expected, "{name}");
            }
        }
    }

    #[test]
    fn sign_rejects_a_negative_time_and_an_empty_secret() {
        for scheme in [Scheme::Stripe, Scheme::StandardWebhooks] {
            let signed = sign(&scheme, &Secret::new(SECRET), b"", -1, "msg");
            assert!(matches!(signed, Err(SignError::InvalidTimestamp)));
        }
        for scheme in all_schemes() {
            if scheme != Scheme::None {
                let signed = sign(&scheme, &Secret::new(""), b"", NOW, "msg");
                assert!(
                    matches!(signed, Err(SignError::InvalidSecret(_))),
                    "{}",
                    scheme.name()
                );
            }
        }
    }

    #[test]
    fn none_always_passes() {
        let v = verifier(Scheme::None, &[]);
        verify(&v, &HeaderMap::new(), "", b"\xff", 0).unwrap();
        v.check().unwrap();
        assert!(
            sign(&Scheme::None, &Secret::new("x"), b"", 0, "")
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn missing_or_empty_secrets_are_config_errors() {
        for scheme in all_schemes() {
            if scheme == Scheme::None {
                continue;
            }
            let v = verifier(scheme.clone(), &[]);
            let err = verify(&v, &HeaderMap::new(), "", b"", 0).unwrap_err();
            assert!(matches!(err, VerifyError::NoSecret), "{}", scheme.name());
            assert!(err.is_config_error());
            assert!(matches!(v.check(), Err(VerifyError::NoSecret)));
            // An empty secret is no key: it would let anybody sign.
            let v = verifier(scheme.clone(), &[""]);
            assert_eq!(
                code(verify(&v, &HeaderMap::new(), "", b"", 0)),
                "invalid_secret"
            );
            assert!(matches!(v.check(), Err(VerifyError::InvalidSecret(_))));
            verifier(scheme, &[SECRET]).check().unwrap();
        }
    }

    #[test]
    fn huge_headers_are_malformed() {
        let huge = HeaderValue::from_str(&"a".repeat(MAX_HEADER_LEN + 1)).unwrap();
        for (scheme, name) in [
            (Scheme::Stripe, "stripe-signature"),
            (Scheme::StandardWebhooks, "webhook-id"),
            (Scheme::StandardWebhooks, "webhook-timestamp"),
            (Scheme::StandardWebhooks, "webhook-signature"),
            (Scheme::Github, "x-hub-signature-256"),
            (shopify(), "x-shopify-hmac-sha256"),
            (mandrill(), "x-mandrill-signature"),
        ] {
            let mut h = plausible_standard_headers();
            h.insert(name, huge.clone());
            let result = verify(&verifier(scheme, &[SECRET]), &h, "", b"", NOW);
            assert_eq!(code(result), "malformed_signature", "{name}");
        }
    }

    #[test]
    fn non_visible_ascii_header_bytes_are_malformed() {
        let values: [&[u8]; 4] = [
            b"t=1,v1=\xff\xfe",
            "t=1,v1=ü".as_bytes(),
            b"\x80",
            b"v1,\xa0",
        ];
        for (scheme, name) in [
            (Scheme::Stripe, "stripe-signature"),
            (Scheme::StandardWebhooks, "webhook-id"),
            (Scheme::StandardWebhooks, "webhook-timestamp"),
            (Scheme::StandardWebhooks, "webhook-signature"),
            (Scheme::StandardWebhooks, "svix-signature"),
            (Scheme::Github, "x-hub-signature-256"),
            (shopify(), "x-shopify-hmac-sha256"),
            (mandrill(), "x-mandrill-signature"),
        ] {
            for value in values {
                let mut h = plausible_standard_headers();
                if name.starts_with("svix") {
                    h.remove("webhook-signature");
                }
                h.insert(name, HeaderValue::from_bytes(value).unwrap());
                let result = verify(&verifier(scheme.clone(), &[SECRET]), &h, "", b"", NOW);
                assert_eq!(code(result), "malformed_signature", "{name} {value:?}");
            }
        }
    }

    fn plausible_standard_headers() -> HeaderMap {
        headers(&[
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1700000000"),
            (
                "webhook-signature",
                "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=",
            ),
        ])
    }

    #[test]
    fn error_codes_are_stable() {
        let stale = VerifyError::Stale {
            timestamp: 0,
            now: 0,
            tolerance_secs: 0,
        };
        let cases = [
            (
                VerifyError::MissingHeader(Cow::Borrowed("x")),
                "missing_signature",
            ),
            (VerifyError::MissingToken, "missing_signature"),
            (VerifyError::Malformed(String::new()), "malformed_signature"),
            (stale, "timestamp_out_of_tolerance"),
            (VerifyError::Mismatch, "signature_mismatch"),
            (VerifyError::NoSecret, "no_secret_configured"),
            (VerifyError::InvalidSecret(""), "invalid_secret"),
            (
                VerifyError::InvalidConfig(String::new()),
                "invalid_signature_config",
            ),
        ];
        for (err, code) in cases {
            assert_eq!(err.code(), code);
            let config = matches!(
                code,
                "no_secret_configured" | "invalid_secret" | "invalid_signature_config"
            );
            assert_eq!(err.is_config_error(), config, "{code}");
        }
    }

    #[test]
    fn errors_never_reveal_secrets_or_signatures() {
        let secret = "whsec_SUPERSECRETVALUE";
        let body = b"{}";
        let signed = sign(&Scheme::Stripe, &Secret::new(secret), body, NOW, "").unwrap();
        let expected = signed[0].1.rsplit('=').next().unwrap().to_owned();
        let offered = format!("t={NOW},v1={}", "00".repeat(32));
        let v = verifier(Scheme::Stripe, &[secret]);
        for now in [NOW, NOW + 10_000] {
            let h = headers(&[("Stripe-Signature", &offered)]);
            let err = verify(&v, &h, "", body, now).unwrap_err();
            let text = format!("{err} {err:?} {v:?}");
            assert!(
                !text.contains("SUPERSECRET") && !text.contains(&expected),
                "{text}"
            );
        }
        let v = verifier(Scheme::Token, &["SUPERSECRET"]);
        let err = verify(&v, &HeaderMap::new(), "token=SUPERSECREX", b"", 0).unwrap_err();
        assert!(!format!("{err} {err:?} {v:?}").contains("SUPERSECRE"));
    }

    #[test]
    fn scheme_names() {
        let names: Vec<_> = all_schemes().iter().map(Scheme::name).collect();
        let expected = [
            "stripe",
            "standard-webhooks",
            "github",
            "hmac-sha256",
            "hmac-sha256",
            "mandrill",
            "token",
            "none",
        ];
        assert_eq!(names, expected);
    }

    /// Arbitrary bytes in every header, the query and the body: no panic, and nothing but
    /// `none` ever passes.
    #[test]
    fn hostile_input_never_panics_or_passes() {
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            // xorshift64*: deterministic, no extra dependency.
            state ^= state >> 12;
            state ^= state << 25;
            state ^= state >> 27;
            state.wrapping_mul(0x2545_f491_4f6c_dd1d)
        };
        let alphabet: &[u8] = b"tv01=,. +/%&\xff\x80\x00\tabcdefABCDEF0123456789whsec_token";
        let mut random = |max_len: u64| -> Vec<u8> {
            let len = next() % (max_len + 1);
            let pick = |n: u64| alphabet[usize::try_from(n).unwrap() % alphabet.len()];
            (0..len).map(|_| pick(next())).collect()
        };
        let names = [
            "stripe-signature",
            "webhook-id",
            "webhook-timestamp",
            "webhook-signature",
            "svix-signature",
            "x-hub-signature-256",
            "x-shopify-hmac-sha256",
            "x-signature",
            "x-mandrill-signature",
        ];
        for _ in 0..2000 {
            let mut h = HeaderMap::new();
            for name in names {
                if let Ok(value) = HeaderValue::from_bytes(&random(120)) {
                    h.insert(name, value);
                }
            }
            let query = String::from_utf8_lossy(&random(40)).into_owned();
            let body = random(200);
            for scheme in all_schemes() {
                let result = verify(&verifier(scheme.clone(), &[SECRET]), &h, &query, &body, NOW);
                assert_eq!(result.is_ok(), scheme == Scheme::None, "{}", scheme.name());
            }
        }
    }
}
