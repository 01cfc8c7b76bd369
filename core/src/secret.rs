//! Secrets from the operator's config, kept out of logs and error text.

use std::fmt;

/// A secret value (a signing key, an admin token). `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself. Call this only where the bytes are used (HMAC keys, comparisons).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

/// Secrets shorter than this are not masked inside other text (a short value would mask
/// unrelated words); they still never appear where a secret is printed whole.
const MIN_REDACTED_LEN: usize = 6;

/// `text` with every occurrence of each secret replaced by `****`.
pub fn redact<'a>(text: &'a str, secrets: &[Secret]) -> std::borrow::Cow<'a, str> {
    let mut text = std::borrow::Cow::Borrowed(text);
    for secret in secrets {
        let value = secret.expose();
        if value.len() >= MIN_REDACTED_LEN && text.contains(value) {
            text = std::borrow::Cow::Owned(text.replace(value, "****"));
        }
    }
    text
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(****)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("****")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redact_masks_every_long_enough_secret() {
        let secrets = [Secret::new("sk_live_abcdef"), Secret::new("abc")];
        assert_eq!(
            redact("key=sk_live_abcdef&again=sk_live_abcdef abc", &secrets),
            "key=****&again=**** abc"
        );
        assert!(matches!(
            redact("nothing", &secrets),
            std::borrow::Cow::Borrowed(_)
        ));
    }
}
