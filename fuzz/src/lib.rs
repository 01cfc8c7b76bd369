//! What the signature targets share: a request built from fuzzer input, and the oracle
//! every scheme must satisfy.
//!
//! Each target checks two things for any input: verification never panics (it answers
//! `Ok` or an error), and a body signed with [`verify::sign`] always verifies under the
//! same secret at the same time, whatever the body's bytes (signing and parsing share
//! their message builder, and this keeps them agreeing).

use arbitrary::Arbitrary;
use http::{HeaderMap, HeaderName, HeaderValue};
use switchyard_core::secret::Secret;
use switchyard_core::verify::{self, Request, Scheme, Verifier};

/// A request whose signature headers the fuzzer writes: each value goes to one of the
/// scheme's header names (a name may repeat, as a hostile sender may send it twice).
#[derive(Debug, Arbitrary)]
pub struct Input {
    pub headers: Vec<(u8, Vec<u8>)>,
    pub query: String,
    pub body: Vec<u8>,
    pub now: i64,
    pub secret: String,
    /// Sign `body` first and check that it verifies.
    pub sign: bool,
}

/// Run one input against `scheme`, whose signature headers are `names`.
pub fn check(scheme: Scheme, names: &[&'static str], input: Input) {
    let mut headers = HeaderMap::new();
    for (which, value) in &input.headers {
        let name = HeaderName::from_static(names[usize::from(*which) % names.len()]);
        if let Ok(value) = HeaderValue::from_bytes(value) {
            headers.append(name, value);
        }
    }
    let secret = Secret::new(input.secret);
    let verifier = Verifier::new(
        scheme.clone(),
        vec![secret.clone()],
        verify::DEFAULT_TOLERANCE,
    );
    let request = Request {
        headers: &headers,
        query: &input.query,
        body: &input.body,
    };
    let _ = verifier.verify(&request, input.now);

    if input.sign
        && let Ok(signed) = verify::sign(&scheme, &secret, &input.body, input.now, "msg_fuzz")
    {
        let mut headers = HeaderMap::new();
        let mut query = String::new();
        for (name, value) in signed {
            if name == "query" {
                query = value;
            } else {
                headers.append(
                    HeaderName::from_bytes(name.as_bytes()).expect("sign gives valid names"),
                    HeaderValue::from_str(&value).expect("sign gives valid values"),
                );
            }
        }
        let request = Request {
            headers: &headers,
            query: &query,
            body: &input.body,
        };
        if let Err(err) = verifier.verify(&request, input.now) {
            panic!(
                "{} signed a body that it then refused: {err}",
                scheme.name()
            );
        }
    }
}
