//! `application/x-www-form-urlencoded` from bytes, for Mandrill bodies and query strings.
//!
//! Not `form_urlencoded`/`serde_urlencoded`: they replace invalid UTF-8 with U+FFFD, so two
//! different bodies would build the same signed message. Here invalid UTF-8 is an error.

/// The `key=value` pairs of `input`, URL-decoded; `None` if any decodes to invalid UTF-8.
/// Empty pairs are skipped, a pair without `=` has an empty value, and a `%` not followed by
/// two hex digits stays literal (as in browsers and PHP).
pub(super) fn pairs(input: &[u8]) -> Option<Vec<(String, String)>> {
    input
        .split(|&b| b == b'&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let mut parts = pair.splitn(2, |&b| b == b'=');
            let key = parts.next().unwrap_or_default();
            let value = parts.next().unwrap_or_default();
            Some((decode(key)?, decode(value)?))
        })
        .collect()
}

fn decode(input: &[u8]) -> Option<String> {
    fn hex_digit(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'+' => out.push(b' '),
            b'%' => match (
                tail.first().copied().and_then(hex_digit),
                tail.get(1).copied().and_then(hex_digit),
            ) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    rest = tail.get(2..).unwrap_or_default();
                }
                _ => out.push(b'%'),
            },
            _ => out.push(b),
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        assert_eq!(decode(b"a+b%20c%2B%25").as_deref(), Some("a b c+%"));
        assert_eq!(decode(b"%").as_deref(), Some("%"));
        assert_eq!(decode(b"%4").as_deref(), Some("%4"));
        assert_eq!(decode(b"%zz%c3%a9").as_deref(), Some("%zzé"));
        assert_eq!(decode("é".as_bytes()).as_deref(), Some("é"));
        assert_eq!(decode(b"%C3"), None);
        assert_eq!(decode(b"\xff"), None);
    }

    #[test]
    fn splits_pairs() {
        let expected = [("a", "1"), ("b", ""), ("c", "x=y"), ("", "z")];
        let expected: Vec<_> = expected
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(pairs(b"a=1&&b&c=x=y&=z&"), Some(expected));
        assert_eq!(pairs(b""), Some(Vec::new()));
        assert_eq!(pairs(b"a=1&b=%FF"), None);
    }
}
