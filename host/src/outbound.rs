//! Outbound HTTP shared by `http.fetch` (during a connector call) and deliveries: the
//! allow-list check, the guard against internal addresses, header hygiene, size caps and a
//! per-request timeout.
//!
//! # Internal addresses (SSRF)
//! A connector is third-party code, and `allowed_hosts = ["*"]` or a hostname entry must
//! not let it reach the host's own admin API, a cloud metadata service or the private
//! network. Loopback, private (RFC 1918, ULA), link-local (with `169.254.169.254`),
//! carrier-grade NAT, unspecified, broadcast and multicast addresses ([`is_internal`]) are
//! reached only through an `allowed_hosts` entry that names that address itself
//! (`"http://127.0.0.1:9000"`); a hostname entry or `"*"` never grants them. The check is
//! on the address connected to: hostnames are resolved by [`GuardedResolver`], which
//! hands the connector only public addresses, so a name that resolves (or re-resolves,
//! DNS rebinding) to an internal address is refused. Redirects are never followed.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use switchyard_core::record::Body;

/// Origins a connector may reach, from `allowed_hosts` (`"http://127.0.0.1:9000"`,
/// `"https://api.stripe.com"`; `"*"` allows any public host).
#[derive(Debug, Clone, Default)]
pub struct AllowedHosts {
    any: bool,
    origins: Vec<Origin>,
    /// `destination:ID` entries: the `[[destination]]`s granted by name.
    destinations: Vec<String>,
}

/// (scheme, host, port with the scheme's default filled in).
type Origin = (String, url::Host<String>, u16);

impl AllowedHosts {
    /// Entries that do not parse as an origin are skipped here; config validation reports them.
    pub fn new<S: AsRef<str>>(entries: &[S]) -> Self {
        let mut hosts = AllowedHosts::default();
        for entry in entries {
            let entry = entry.as_ref().trim();
            if entry == "*" {
                hosts.any = true;
            } else if let Some(id) = entry.strip_prefix(crate::config::DESTINATION_PREFIX) {
                hosts.destinations.push(id.to_owned());
            } else if let Some(origin) = origin_of(entry) {
                hosts.origins.push(origin);
            }
        }
        hosts
    }

    /// [`AllowedHosts::allows`], as the error a refusal is.
    pub fn check(&self, url: &str) -> Result<(), OutboundError> {
        if self.allows(url) {
            return Ok(());
        }
        let internal = origin_of(url).is_some_and(|(_, host, _)| host_is_internal(&host));
        Err(OutboundError::Denied(if internal && self.any {
            format!(
                "{url} is an internal address: allowed_hosts must name it (\"*\" does not grant it)"
            )
        } else {
            format!("{url} is not in this connector's allowed_hosts")
        }))
    }

    /// Whether a connector may deliver to the `[[destination]]` `id` at `url`: an entry
    /// names it (`destination:ID`), or `url`'s origin passes [`AllowedHosts::allows`].
    pub fn grants_destination(&self, id: &str, url: &str) -> bool {
        self.destinations.iter().any(|d| d == id) || self.allows(url)
    }

    /// Whether `url` may be requested. Only `http`/`https` URLs ever pass; an internal
    /// address only when an entry names it (see the module's doc). A hostname that passes
    /// here is still refused at connect time if it resolves to internal addresses only.
    pub fn allows(&self, url: &str) -> bool {
        let Some(origin) = origin_of(url) else {
            return false;
        };
        if self.origins.contains(&origin) {
            return true;
        }
        self.any && !host_is_internal(&origin.1)
    }
}

fn origin_of(url: &str) -> Option<Origin> {
    let url = reqwest::Url::parse(url).ok()?;
    let scheme = url.scheme();
    if scheme != "http" && scheme != "https" {
        return None;
    }
    // The URL parser lowercases names and normalises addresses (`0x7f.1` is 127.0.0.1).
    let host = url.host()?.to_owned();
    let port = url.port_or_known_default()?;
    Some((scheme.to_string(), host, port))
}

fn host_is_internal(host: &url::Host<String>) -> bool {
    match host {
        url::Host::Ipv4(ip) => is_internal(IpAddr::V4(*ip)),
        url::Host::Ipv6(ip) => is_internal(IpAddr::V6(*ip)),
        url::Host::Domain(_) => false,
    }
}

/// Whether `ip` is one a connector reaches only when `allowed_hosts` names it: not a
/// public unicast address.
pub fn is_internal(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_internal_v4(ip),
        IpAddr::V6(ip) => match ip.to_ipv4_mapped() {
            // `::ffff:127.0.0.1` is 127.0.0.1.
            Some(v4) => is_internal_v4(v4),
            None => is_internal_v6(ip),
        },
    }
}

fn is_internal_v4(ip: Ipv4Addr) -> bool {
    let [a, b, ..] = ip.octets();
    ip.is_loopback()                          // 127/8
        || ip.is_private()                    // 10/8, 172.16/12, 192.168/16
        || ip.is_link_local()                 // 169.254/16: cloud metadata lives here
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || a == 0                             // "this network"
        || (a == 100 && (64..128).contains(&b)) // 100.64/10, carrier-grade NAT (and Alibaba's metadata)
        || (a == 192 && b == 0 && ip.octets()[2] == 0) // 192.0.0/24, protocol assignments
        || (a == 198 && (b == 18 || b == 19)) // 198.18/15, benchmarking
        || a >= 240 // reserved
}

fn is_internal_v6(ip: Ipv6Addr) -> bool {
    let first = ip.segments()[0];
    ip.is_loopback()
        || ip.is_unspecified()
        || ip.is_multicast()
        || (first & 0xfe00) == 0xfc00 // fc00::/7, unique local (AWS's fd00:ec2::254 metadata)
        || (first & 0xffc0) == 0xfe80 // fe80::/10, link-local
        || (first & 0xffc0) == 0xfec0 // fec0::/10, deprecated site-local
        // 64:ff9b::/96 (NAT64) and ::/96 (IPv4-compatible) carry an IPv4 address.
        || ((ip.segments()[..6] == [0x64, 0xff9b, 0, 0, 0, 0] || ip.segments()[..6] == [0; 6])
            && is_internal_v4(Ipv4Addr::from_bits(ip.to_bits() as u32)))
}

/// The outbound client's resolver: a name's internal addresses are dropped, so a
/// connection goes only to the public ones; a name with none is an error that says so.
/// (IP-literal URLs never reach a resolver: [`AllowedHosts::allows`] checks them.)
#[derive(Debug, Default)]
pub struct GuardedResolver;

impl reqwest::dns::Resolve for GuardedResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = name.as_str().to_string();
        Box::pin(async move {
            let all: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let public: Vec<SocketAddr> = all
                .iter()
                .copied()
                .filter(|a| !is_internal(a.ip()))
                .collect();
            if public.is_empty() {
                return Err(Box::new(InternalOnly {
                    host,
                    found: all.iter().map(|a| a.ip()).collect(),
                }) as _);
            }
            let addrs: reqwest::dns::Addrs = Box::new(public.into_iter());
            Ok(addrs)
        })
    }
}

/// A name that resolved to internal addresses only: refused like a host that is not
/// granted (a delivery to it is dead at once, not retried).
#[derive(Debug, thiserror::Error)]
#[error(
    "{host} resolves to internal addresses only ({}): allowed_hosts must name such an address itself",
    found.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
)]
struct InternalOnly {
    host: String,
    found: Vec<IpAddr>,
}

/// The HTTP client for `http.fetch` and deliveries: no redirects, and hostnames resolved
/// by [`GuardedResolver`].
pub fn client() -> reqwest::Result<reqwest::Client> {
    builder().dns_resolver(Arc::new(GuardedResolver)).build()
}

/// The client for URLs the operator wrote (`[[destination]]`, `[alerts] url`): like
/// [`client`], but a name may resolve to an internal address (`http://billing.internal`),
/// since no connector chose it.
pub fn operator_client() -> reqwest::Result<reqwest::Client> {
    builder().build()
}

/// What both clients share: our user agent, no redirects, idle connections kept a minute.
fn builder() -> reqwest::ClientBuilder {
    reqwest::Client::builder()
        .user_agent(concat!("switchyard/", env!("CARGO_PKG_VERSION")))
        .redirect(reqwest::redirect::Policy::none())
        .pool_idle_timeout(Duration::from_secs(60))
}

/// A delivery's headers as sent: the connector's `own`, with the host's `extra` in place
/// of any of the same name (an HTTP request and a queue message alike).
pub fn merged_headers<'a>(
    own: &'a [(String, String)],
    extra: &'a [(String, String)],
) -> impl Iterator<Item = &'a (String, String)> {
    own.iter()
        .filter(|(name, _)| !extra.iter().any(|(e, _)| e.eq_ignore_ascii_case(name)))
        .chain(extra)
}

pub use switchyard_core::record::{OutboundRequest, OutboundResponse};

/// Why a request got no response.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum OutboundError {
    /// Refused before anything was sent; the text says why.
    #[error("{0}")]
    Denied(String),
    #[error("no response within {0:?}")]
    Timeout(Duration),
    #[error("{0}")]
    Transport(String),
}

/// Response bodies larger than this are cut (and the cut is visible in the log).
pub const MAX_RESPONSE_BYTES: usize = 4 * 1024 * 1024;

/// Perform one request. `extra_headers` are added after the connector's own (signing,
/// `Idempotency-Key`). Returns the response and how long it took.
pub async fn send(
    client: &reqwest::Client,
    allowed: &AllowedHosts,
    request: &OutboundRequest,
    extra_headers: &[(String, String)],
    timeout: Duration,
) -> (Result<OutboundResponse, OutboundError>, Duration) {
    send_to(
        client,
        allowed,
        &request.url,
        request,
        extra_headers,
        timeout,
    )
    .await
}

/// [`send`] `request` to `url` instead of its own (a `[[destination]]`'s). A header in
/// `extra_headers` replaces the request's header of the same name.
pub async fn send_to(
    client: &reqwest::Client,
    allowed: &AllowedHosts,
    url: &str,
    request: &OutboundRequest,
    extra_headers: &[(String, String)],
    timeout: Duration,
) -> (Result<OutboundResponse, OutboundError>, Duration) {
    let started = Instant::now();
    let result = send_inner(client, allowed, url, request, extra_headers, timeout).await;
    (result, started.elapsed())
}

async fn send_inner(
    client: &reqwest::Client,
    allowed: &AllowedHosts,
    url: &str,
    request: &OutboundRequest,
    extra_headers: &[(String, String)],
    timeout: Duration,
) -> Result<OutboundResponse, OutboundError> {
    allowed.check(url)?;
    let method = reqwest::Method::from_bytes(request.method.as_bytes())
        .map_err(|_| OutboundError::Transport(format!("invalid method {:?}", request.method)))?;
    let mut builder = client.request(method, url).timeout(timeout);
    for (name, value) in merged_headers(&request.headers, extra_headers) {
        // Hop-by-hop and framing headers are the client's business, not the connector's.
        let lower = name.to_ascii_lowercase();
        if matches!(
            lower.as_str(),
            "host" | "content-length" | "transfer-encoding" | "connection"
        ) {
            continue;
        }
        builder = builder.header(name.as_str(), value.as_str());
    }
    let response = builder
        .body(request.body.to_vec())
        .send()
        .await
        .map_err(|err| classify(err, timeout))?;
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = Vec::new();
    let mut response = response;
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_RESPONSE_BYTES - body.len();
                body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if body.len() >= MAX_RESPONSE_BYTES {
                    break;
                }
            }
            Ok(None) => break,
            Err(err) => return Err(classify(err, timeout)),
        }
    }
    Ok(OutboundResponse {
        status,
        headers,
        body: Body::from(body),
    })
}

fn classify(err: reqwest::Error, timeout: Duration) -> OutboundError {
    let mut source = std::error::Error::source(&err);
    while let Some(cause) = source {
        if let Some(internal) = cause.downcast_ref::<InternalOnly>() {
            return OutboundError::Denied(internal.to_string());
        }
        source = cause.source();
    }
    if err.is_timeout() {
        OutboundError::Timeout(timeout)
    } else {
        // The full chain says *why* (connection refused, TLS, reset) without any secret.
        let mut text = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            text.push_str(": ");
            text.push_str(&cause.to_string());
            source = cause.source();
        }
        OutboundError::Transport(text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allow_list_matches_origin_exactly() {
        let hosts = AllowedHosts::new(&["http://127.0.0.1:9000", "https://api.stripe.com"]);
        assert!(hosts.allows("http://127.0.0.1:9000/billing"));
        assert!(hosts.allows("https://API.stripe.com/v1/invoices/in_1"));
        assert!(hosts.allows("https://api.stripe.com:443/v1"));
        assert!(!hosts.allows("http://127.0.0.1:9001/billing"));
        assert!(!hosts.allows("https://127.0.0.1:9000/"));
        assert!(!hosts.allows("http://api.stripe.com/"));
        assert!(!hosts.allows("https://api.stripe.com.evil.example/"));
        assert!(!hosts.allows("file:///etc/passwd"));
        assert!(!hosts.allows("not a url"));
    }

    #[test]
    fn wildcard_allows_any_http_but_nothing_else() {
        let hosts = AllowedHosts::new(&["*"]);
        assert!(hosts.allows("https://example.com/x"));
        assert!(hosts.allows("http://93.184.215.14/x"));
        assert!(!hosts.allows("ftp://example.com/x"));
    }

    #[test]
    fn wildcard_and_names_never_grant_internal_addresses() {
        let hosts = AllowedHosts::new(&["*", "http://127.0.0.1:9000"]);
        for url in [
            "http://127.0.0.1:8080/v1/connectors",
            "http://127.1.2.3/",
            "http://2130706433/", // 127.0.0.1 as one number
            "http://0x7f.0.0.1/", // … in hex
            "http://169.254.169.254/latest/meta-data/",
            "http://10.0.0.5/",
            "http://172.16.0.1/",
            "http://192.168.1.1/",
            "http://100.100.100.200/", // Alibaba Cloud's metadata (CGNAT range)
            "http://0.0.0.0:8080/",
            "http://[::1]:8080/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:169.254.169.254]/",
            "http://[fd00:ec2::254]/", // AWS's IPv6 metadata
            "http://[fe80::1]/",
            "http://[64:ff9b::a00:1]/", // NAT64 of 10.0.0.1
        ] {
            assert!(!hosts.allows(url), "{url} must be refused");
        }
        // The entry that names the address itself still grants it, and only it.
        assert!(hosts.allows("http://127.0.0.1:9000/billing"));
        assert!(!hosts.allows("http://127.0.0.1:9001/billing"));
        let named = AllowedHosts::new(&["http://[::1]:9000"]);
        assert!(named.allows("http://[::1]:9000/x"));
    }

    #[test]
    fn public_addresses_are_not_internal() {
        for ip in [
            "93.184.215.14",
            "8.8.8.8",
            "100.63.255.255",
            "172.32.0.1",
            "2606:4700::1111",
        ] {
            assert!(!is_internal(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn a_name_that_resolves_to_loopback_is_refused_at_connect_time() {
        use reqwest::dns::Resolve as _;
        let err = match GuardedResolver.resolve("localhost".parse().unwrap()).await {
            Ok(addrs) => panic!("resolved to {:?}", addrs.collect::<Vec<_>>()),
            Err(err) => err.to_string(),
        };
        assert!(err.contains("internal addresses only"), "{err}");
    }

    #[test]
    fn empty_list_denies_everything() {
        let hosts = AllowedHosts::new::<&str>(&[]);
        assert!(!hosts.allows("http://127.0.0.1:9000/"));
    }
}
