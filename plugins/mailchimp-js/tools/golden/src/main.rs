//! Reads tools/corpus.mjs's events (JSON on stdin), runs each through the Rust Mailchimp
//! connector with the SDK's TestHost, and prints the events with what the connector did:
//! its dedupe key, its deliveries (method, URL, headers, body as text) or failure, and its
//! log lines.

use std::io::Read;

use mailchimp::Mailchimp;
use serde_json::{Value, json};
use switchyard_sdk::{Failure, TestHost, Webhook};

fn main() {
    let mut input = String::new();
    std::io::stdin().read_to_string(&mut input).unwrap();
    let events: Vec<Value> = serde_json::from_str(&input).unwrap();
    let mut out = Vec::new();
    for event in events {
        let body = event["body"].as_str().unwrap().to_owned();
        let webhook = Webhook::builder()
            .connector("mailchimp")
            .query("token=****")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body.clone())
            .build();
        let mut host = TestHost::new();
        for (key, value) in event["settings"].as_object().unwrap() {
            host = host.setting(key.clone(), value.as_str().unwrap().to_owned());
        }
        let dedupe = host.dedupe_key::<Mailchimp>(&webhook);
        let result = match host.handle::<Mailchimp>(&webhook) {
            Ok(deliveries) => json!({"deliveries": deliveries.iter().map(|d| json!({
                "method": d.method,
                "url": d.url,
                "headers": d.headers,
                "body": String::from_utf8(d.body.clone()).unwrap(),
            })).collect::<Vec<_>>()}),
            Err(Failure::Retry(m)) => json!({"failure": {"kind": "retry", "message": m}}),
            Err(Failure::Reject(m)) => json!({"failure": {"kind": "reject", "message": m}}),
        };
        let logs: Vec<Value> = host
            .logs()
            .into_iter()
            .map(|(level, message)| json!([level.to_string(), message]))
            .collect();
        out.push(json!({
            "name": event["name"],
            "body": body,
            "settings": event["settings"],
            "dedupe_key": dedupe,
            "result": result,
            "logs": logs,
        }));
    }
    println!("{}", serde_json::to_string_pretty(&out).unwrap());
}
