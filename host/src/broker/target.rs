//! Broker URLs parsed into what each publisher needs: pure, so `check_url` can run at
//! config load without a network.

use url::Url;

/// A parsed broker URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Target {
    Nats(NatsTarget),
    Amqp(AmqpTarget),
    Redis(RedisTarget),
}

/// Where a broker listens, and as whom we connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Server {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// Percent-decoded; `None` when the URL has none.
    pub user: Option<String>,
    pub password: Option<String>,
}

impl Server {
    /// `host:port`, bracketed for IPv6, for messages and addresses.
    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// The cache key: one connection per scheme, credentials and address (and whatever
    /// `extra` the broker binds a connection to).
    fn key(&self, scheme: &str, extra: &str) -> String {
        format!(
            "{scheme}://{}:{}@{}/{extra}",
            self.user.as_deref().unwrap_or(""),
            self.password.as_deref().unwrap_or(""),
            self.address()
        )
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct NatsTarget {
    pub server: Server,
    pub subject: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct AmqpTarget {
    pub server: Server,
    /// Decoded (`/` for the default vhost).
    pub vhost: String,
    /// `""` is the default exchange.
    pub exchange: String,
    pub routing_key: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RedisTarget {
    pub server: Server,
    pub db: i64,
    /// The stream's key.
    pub stream: String,
    /// `XADD … MAXLEN ~ N`.
    pub maxlen: Option<u64>,
}

impl NatsTarget {
    pub fn key(&self) -> String {
        self.server.key("nats", "")
    }

    pub fn display(&self) -> String {
        format!("nats://{}", self.server.address())
    }
}

impl AmqpTarget {
    pub fn key(&self) -> String {
        self.server
            .key(if self.server.tls { "amqps" } else { "amqp" }, &self.vhost)
    }

    pub fn display(&self) -> String {
        format!(
            "{}://{} vhost {:?}",
            if self.server.tls { "amqps" } else { "amqp" },
            self.server.address(),
            self.vhost
        )
    }
}

impl RedisTarget {
    pub fn key(&self) -> String {
        self.server.key(
            if self.server.tls { "rediss" } else { "redis" },
            &self.db.to_string(),
        )
    }

    pub fn display(&self) -> String {
        format!(
            "{}://{} db {}",
            if self.server.tls { "rediss" } else { "redis" },
            self.server.address(),
            self.db
        )
    }
}

impl Target {
    /// Parse a broker URL; the error says what is wrong and how it should look.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let url = Url::parse(raw.trim()).map_err(|err| format!("`{}`: {err}", redacted(raw)))?;
        let shown = redacted(raw);
        let context = |message: String| format!("`{shown}`: {message}");
        if url.fragment().is_some() {
            return Err(context("a broker URL takes no `#fragment`".into()));
        }
        match url.scheme() {
            "nats" => parse_nats(&url).map(Target::Nats).map_err(context),
            "amqp" | "amqps" => parse_amqp(&url).map(Target::Amqp).map_err(context),
            "redis" | "rediss" => parse_redis(&url).map(Target::Redis).map_err(context),
            other => Err(context(format!(
                "scheme `{other}` is not a broker (nats://, amqp://, amqps://, redis://, \
                 rediss://)"
            ))),
        }
    }

    /// The broker, without credentials, for error messages.
    pub fn origin_for_display(&self) -> String {
        match self {
            Target::Nats(to) => to.display(),
            Target::Amqp(to) => to.display(),
            Target::Redis(to) => to.display(),
        }
    }
}

/// Config validation: whether `url` is a broker URL [`super::Brokers`] can publish to,
/// with a message naming what is wrong when it is not.
pub fn check_url(url: &str) -> Result<(), String> {
    Target::parse(url).map(|_| ())
}

/// `url` with any password replaced by `***`, for logs and messages.
pub(super) fn redacted(url: &str) -> String {
    match Url::parse(url.trim()) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        Ok(_) => url.trim().to_owned(),
        // Not a URL: still hide whatever sits between `://` and a later `@`.
        Err(_) => match (url.find("://"), url.rfind('@')) {
            (Some(start), Some(at)) if at > start => {
                format!("{}***{}", &url[..start + 3], &url[at..])
            }
            _ => url.to_owned(),
        },
    }
}

fn server(url: &Url, default_port: u16, tls: bool) -> Result<Server, String> {
    let host = url
        .host_str()
        .filter(|host| !host.is_empty())
        .ok_or("no host: the broker's address goes after `://`")?;
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_owned();
    let user = Some(decode(url.username(), "the user name")?).filter(|user| !user.is_empty());
    let password = url
        .password()
        .map(|password| decode(password, "the password"))
        .transpose()?;
    Ok(Server {
        tls,
        host,
        port: url.port().unwrap_or(default_port),
        user,
        password,
    })
}

/// The query's pairs, each name at most once and among `known`.
fn query<'a>(url: &Url, known: &[&'a str]) -> Result<Vec<(&'a str, String)>, String> {
    let mut pairs: Vec<(&'a str, String)> = Vec::new();
    for (name, value) in url.query_pairs() {
        let Some(name) = known.iter().find(|known| **known == name) else {
            return Err(if known.is_empty() {
                format!("unknown query parameter `{name}`: this scheme takes none")
            } else {
                format!(
                    "unknown query parameter `{name}` (known: {})",
                    known.join(", ")
                )
            });
        };
        if pairs.iter().any(|(seen, _)| seen == name) {
            return Err(format!("query parameter `{name}` is given twice"));
        }
        pairs.push((name, value.into_owned()));
    }
    Ok(pairs)
}

fn parse_nats(url: &Url) -> Result<NatsTarget, String> {
    let server = server(url, 4222, false)?;
    query(url, &[])?;
    let subject = decode(url.path().trim_start_matches('/'), "the subject")?;
    if subject.is_empty() {
        return Err(
            "no subject: it is the path, as in nats://127.0.0.1:4222/orders.created".into(),
        );
    }
    if subject
        .bytes()
        .any(|b| b.is_ascii_whitespace() || b.is_ascii_control())
    {
        return Err(format!(
            "subject `{subject}` holds whitespace (tokens are separated by `.`)"
        ));
    }
    if subject.contains(['*', '>']) {
        return Err(format!(
            "subject `{subject}` holds a wildcard (`*`, `>`): publish to one subject"
        ));
    }
    if subject.split('.').any(str::is_empty) {
        return Err(format!(
            "subject `{subject}` has an empty token (a leading, trailing or doubled `.`)"
        ));
    }
    Ok(NatsTarget { server, subject })
}

fn parse_amqp(url: &Url) -> Result<AmqpTarget, String> {
    let tls = url.scheme() == "amqps";
    let mut server = server(url, if tls { 5671 } else { 5672 }, tls)?;
    // RabbitMQ's own default; lapin would send the same.
    if server.user.is_none() && server.password.is_none() {
        server.user = Some("guest".into());
        server.password = Some("guest".into());
    }
    let path = url.path();
    let vhost = match path {
        "" | "/" => "/".to_owned(),
        _ => decode(&path[1..], "the vhost")?,
    };
    if vhost.contains('/') && vhost != "/" {
        return Err(format!(
            "vhost `{vhost}` holds a `/`: write it percent-encoded (%2F) as one path segment"
        ));
    }
    let mut exchange = String::new();
    let mut routing_key = None;
    for (name, value) in query(url, &["exchange", "routing_key"])? {
        match name {
            "exchange" => exchange = value,
            _ => routing_key = Some(value),
        }
    }
    let routing_key = routing_key.unwrap_or_default();
    if exchange.is_empty() && routing_key.is_empty() {
        return Err(
            "no routing_key: through the default exchange it names the queue, as in \
             amqp://host:5672/%2f?routing_key=orders (or name an exchange with ?exchange=)"
                .into(),
        );
    }
    for (what, value) in [("exchange", &exchange), ("routing_key", &routing_key)] {
        if value.len() > 255 {
            return Err(format!(
                "{what} is {} bytes long; AMQP allows 255",
                value.len()
            ));
        }
    }
    Ok(AmqpTarget {
        server,
        vhost,
        exchange,
        routing_key,
    })
}

fn parse_redis(url: &Url) -> Result<RedisTarget, String> {
    let tls = url.scheme() == "rediss";
    let server = server(url, 6379, tls)?;
    let stream = decode(url.path().trim_start_matches('/'), "the stream key")?;
    if stream.is_empty() {
        return Err("no stream: its key is the path, as in redis://127.0.0.1:6379/orders".into());
    }
    if stream.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "the path `/{stream}` is the stream's key here, not a database number: choose the \
             database with ?db={stream} and name the stream in the path"
        ));
    }
    let mut db = 0;
    let mut maxlen = None;
    for (name, value) in query(url, &["db", "maxlen"])? {
        match name {
            "db" => {
                db = value
                    .parse::<u16>()
                    .map_err(|_| format!("db `{value}` is not a database number (0, 1, …)"))?
                    .into();
            }
            _ => {
                let n = value
                    .parse::<u64>()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("maxlen `{value}` is not a positive whole number"))?;
                maxlen = Some(n);
            }
        }
    }
    Ok(RedisTarget {
        server,
        db,
        stream,
        maxlen,
    })
}

/// Percent-decode one URL component into UTF-8.
fn decode(raw: &str, what: &str) -> Result<String, String> {
    let bytes = raw.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    format!("{what} has a `%` that is not followed by two hex digits")
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| format!("{what} is not UTF-8 once percent-decoded"))
}
