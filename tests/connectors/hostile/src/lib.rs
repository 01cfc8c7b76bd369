//! A test connector that misbehaves on request. Each event body is JSON
//! `{"do": "...", ...}`:
//!
//! - `ok`: one delivery of the body to `settings.forward_url` (or to `"url"` if given), with
//!   an `Authorization` header when `"auth"` is given;
//! - `spin`: loops forever (the host's deadline must stop it);
//! - `alloc`: grows memory without bound (the memory cap must stop it);
//! - `trap`: panics;
//! - `retry` / `reject`: returns that failure with `"message"`;
//! - `fetch`: fetches `"url"` and delivers what happened to `forward_url`;
//! - `count`: increments a kv counter and delivers its value;
//! - `many`: `"n"` deliveries to `forward_url`, each with `{"n": i}`, or one delivery to each
//!   of `"urls"`;
//! - `wasi`: tries what WASI would give a program (files, environment, arguments, TCP to
//!   127.0.0.1:`"port"`, UDP, name lookups, the clocks) and delivers what it got to
//!   `forward_url`;
//! - `leak`: puts `settings.secret` everywhere it can: a log line, a fetch of `"url"` (in
//!   the query and a header), and a delivery to `forward_url` (query and header).
//!
//! `dedupe_key` returns `"key"` when present; `"dedupe": "spin"` makes it loop forever,
//! `"trap"` panics, and `"count"` returns `count-{n}`, n counting the `dedupe_key` calls
//! this instance has served (so a test can tell a reused instance from a fresh one).
//! Settings: `forward_url`; `tag` (added as header `x-build-tag` to every delivery).
//! Every delivery carries `x-build: a` (or `b` when built with the `build-b` feature), so
//! hot-swap tests can tell which build handled an event.

use serde_json::{Value, json};
use switchyard_sdk::{Connector, Ctx, Delivery, Failure, Manifest, Request, Webhook};

pub struct Hostile;

/// Which build this is.
const BUILD: &str = if cfg!(feature = "build-b") { "b" } else { "a" };
const VERSION: &str = if cfg!(feature = "build-b") {
    concat!(env!("CARGO_PKG_VERSION"), "+b")
} else {
    concat!(env!("CARGO_PKG_VERSION"), "+a")
};

switchyard_sdk::export!(Hostile);

/// `dedupe_key` calls served by this instance (`"dedupe": "count"`).
static DEDUPE_CALLS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn body(webhook: &Webhook) -> Value {
    serde_json::from_slice(&webhook.body).unwrap_or(Value::Null)
}

impl Connector for Hostile {
    fn manifest() -> Manifest {
        Manifest::new("hostile", VERSION)
            .description("misbehaves on request, for tests")
            .default_scheme("none")
            .optional_setting("forward_url", "where `ok` events go")
            .optional_setting("tag", "x-build-tag header on deliveries")
    }

    fn dedupe_key(webhook: &Webhook) -> Option<String> {
        let body = body(webhook);
        let calls = DEDUPE_CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        match body["dedupe"].as_str() {
            Some("spin") => spin(),
            Some("trap") => panic!("asked to trap in dedupe-key"),
            Some("count") => return Some(format!("count-{calls}")),
            _ => {}
        }
        body["key"].as_str().map(str::to_string)
    }

    fn handle(ctx: &Ctx, webhook: &Webhook) -> Result<Vec<Delivery>, Failure> {
        let body = body(webhook);
        let forward = || ctx.require_setting("forward_url");
        let tagged = |delivery: Delivery| {
            let delivery = delivery.header("x-build", BUILD);
            match ctx.setting("tag") {
                Some(tag) => delivery.header("x-build-tag", tag),
                None => delivery,
            }
        };
        let message = body["message"].as_str().unwrap_or("asked to").to_string();
        match body["do"].as_str().unwrap_or("ok") {
            "ok" => {
                let url = match body["url"].as_str() {
                    Some(url) => url.to_string(),
                    None => forward()?,
                };
                let mut delivery = Delivery::post(url)
                    .json(&body)
                    .header("x-attempt", webhook.attempt.to_string());
                if let Some(auth) = body["auth"].as_str() {
                    delivery = delivery.header("Authorization", auth);
                }
                Ok(vec![tagged(delivery)])
            }
            "spin" => spin(),
            "alloc" => {
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![1u8; 1 << 20]);
                    if hoard.len() == usize::MAX {
                        return Ok(vec![]);
                    }
                }
            }
            "trap" => panic!("asked to trap"),
            "retry" => Err(Failure::retry(message)),
            "reject" => Err(Failure::reject(message)),
            "fetch" => {
                let url = body["url"].as_str().unwrap_or_default();
                let outcome = match ctx.fetch(Request::get(url)) {
                    Ok(response) => json!({ "status": response.status }),
                    Err(err) => json!({ "error": err.to_string() }),
                };
                Ok(vec![tagged(Delivery::post(forward()?).json(&outcome))])
            }
            "count" => {
                let kv = ctx.kv();
                let n = kv
                    .get("count")
                    .and_then(|v| String::from_utf8(v).ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .unwrap_or(0)
                    + 1;
                kv.set("count", n.to_string().as_bytes())?;
                Ok(vec![tagged(
                    Delivery::post(forward()?).json(&json!({ "count": n })),
                )])
            }
            "many" if body["urls"].is_array() => Ok(body["urls"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(|url| tagged(Delivery::post(url).json(&body)))
                .collect()),
            "many" => {
                let n = body["n"].as_u64().unwrap_or(1);
                let url = forward()?;
                Ok((0..n)
                    .map(|i| tagged(Delivery::post(url.clone()).json(&json!({ "n": i }))))
                    .collect())
            }
            "leak" => {
                let secret = ctx.require_setting("secret")?;
                ctx.info(format!("the key is {secret}"));
                let url = body["url"].as_str().unwrap_or_default();
                let _ = ctx
                    .fetch(Request::get(format!("{url}?key={secret}")).header("x-token", &secret));
                Ok(vec![tagged(
                    Delivery::post(format!("{}?key={secret}", forward()?))
                        .header("x-token", &secret)
                        .json(&json!({ "leaked": true })),
                )])
            }
            "wasi" => Ok(vec![tagged(
                Delivery::post(forward()?).json(&wasi_report(body["port"].as_u64().unwrap_or(80))),
            )]),
            other => Err(Failure::reject(format!("unknown instruction {other:?}"))),
        }
    }
}

/// What this instance reaches through WASI: every field is what a sandbox must not give.
fn wasi_report(port: u64) -> Value {
    use std::time::{Instant, SystemTime, UNIX_EPOCH};
    let outcome = |result: std::io::Result<String>| match result {
        Ok(got) => json!({ "ok": got }),
        Err(err) => json!({ "error": err.to_string() }),
    };
    let port = port as u16;
    let started = Instant::now();
    let mut spent = 0u64;
    for i in 0..2_000_000u64 {
        spent = std::hint::black_box(spent.wrapping_add(i));
    }
    json!({
        "file": outcome(std::fs::read_to_string("/etc/hostname")),
        "dir": outcome(std::fs::read_dir("/").map(|d| format!("{} entries", d.count()))),
        "cwd": outcome(std::env::current_dir().map(|p| p.display().to_string())),
        "env": std::env::vars().map(|(k, _)| k).collect::<Vec<_>>(),
        "args": std::env::args().collect::<Vec<_>>(),
        "tcp": outcome(std::net::TcpStream::connect(("127.0.0.1", port)).map(|_| "connected".into())),
        "udp": outcome(std::net::UdpSocket::bind("127.0.0.1:0").map(|s| format!("{:?}", s.local_addr()))),
        "dns": outcome(std::net::ToSocketAddrs::to_socket_addrs(&("localhost", port)).map(|a| format!("{:?}", a.collect::<Vec<_>>()))),
        "wall_clock_secs": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        "monotonic_ns": started.elapsed().as_nanos() as u64,
        "spent": spent,
    })
}

/// Loop forever without the optimiser removing the loop.
fn spin() -> ! {
    let mut x: u64 = 0;
    loop {
        x = std::hint::black_box(x.wrapping_add(1));
    }
}
