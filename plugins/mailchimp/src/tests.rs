//! Unit tests through the SDK's `TestHost`, on the payloads of Mailchimp's webhook docs.

use super::*;
use serde_json::json;
use switchyard_sdk::{Level, TestHost};

const CRM: &str = "http://crm.test/api";

/// Mailchimp's documented `subscribe` example, plus a nested `GROUPINGS` merge.
const SUBSCRIBE: &[(&str, &str)] = &[
    ("type", "subscribe"),
    ("fired_at", "2009-03-26 21:35:57"),
    ("data[id]", "8a25ff1d98"),
    ("data[list_id]", "a6b5da1054"),
    ("data[email]", "api@mailchimp.com"),
    ("data[email_type]", "html"),
    ("data[merges][EMAIL]", "api@mailchimp.com"),
    ("data[merges][FNAME]", "Mailchimp"),
    ("data[merges][LNAME]", "API"),
    ("data[merges][INTERESTS]", "Group1,Group2"),
    ("data[merges][GROUPINGS][0][id]", "1"),
    ("data[merges][GROUPINGS][0][name]", "Interests"),
    ("data[merges][GROUPINGS][0][groups]", "Group1, Group2"),
    ("data[ip_opt]", "10.20.10.30"),
    ("data[ip_signup]", "10.20.10.30"),
];

const PROFILE: &[(&str, &str)] = &[
    ("type", "profile"),
    ("fired_at", "2009-03-26 21:31:21"),
    ("data[id]", "8a25ff1d98"),
    ("data[list_id]", "a6b5da1054"),
    ("data[email]", "api@mailchimp.com"),
    ("data[email_type]", "html"),
    ("data[merges][EMAIL]", "api@mailchimp.com"),
    ("data[merges][FNAME]", "Mailchimp"),
    ("data[merges][LNAME]", "API"),
    ("data[merges][INTERESTS]", "Group1,Group2"),
    ("data[ip_opt]", "10.20.10.30"),
];

const UNSUBSCRIBE: &[(&str, &str)] = &[
    ("type", "unsubscribe"),
    ("fired_at", "2009-03-26 21:40:57"),
    ("data[action]", "unsub"),
    ("data[reason]", "manual"),
    ("data[id]", "8a25ff1d98"),
    ("data[list_id]", "a6b5da1054"),
    ("data[email]", "api+unsub@mailchimp.com"),
    ("data[email_type]", "html"),
    ("data[merges][EMAIL]", "api+unsub@mailchimp.com"),
    ("data[merges][FNAME]", "Mailchimp"),
    ("data[merges][LNAME]", "API"),
    ("data[merges][INTERESTS]", "Group1,Group2"),
    ("data[ip_opt]", "10.20.10.30"),
    ("data[campaign_id]", "cb398d21d2"),
];

const UPEMAIL: &[(&str, &str)] = &[
    ("type", "upemail"),
    ("fired_at", "2009-03-26 22:15:09"),
    ("data[list_id]", "a6b5da1054"),
    ("data[new_id]", "51da8c3259"),
    ("data[new_email]", "api+new@mailchimp.com"),
    ("data[old_email]", "api+old@mailchimp.com"),
];

const CLEANED: &[(&str, &str)] = &[
    ("type", "cleaned"),
    ("fired_at", "2009-03-26 22:01:00"),
    ("data[list_id]", "a6b5da1054"),
    ("data[campaign_id]", "4fjk2ma9xd"),
    ("data[reason]", "hard"),
    ("data[email]", "api+cleaned@mailchimp.com"),
];

const CAMPAIGN: &[(&str, &str)] = &[
    ("type", "campaign"),
    ("fired_at", "2009-03-26 21:31:21"),
    ("data[id]", "5aa2102003"),
    ("data[subject]", "Test Campaign Subject"),
    ("data[status]", "sent"),
    ("data[reason]", ""),
    ("data[list_id]", "a6b5da1054"),
];

/// A form body as `(key, value)` pairs.
type Pairs = &'static [(&'static str, &'static str)];

fn webhook(pairs: &[(&str, &str)]) -> Webhook {
    Webhook::builder()
        .connector("mailchimp")
        .query("token=****")
        .form(pairs)
        .build()
}

fn raw(body: &str) -> Webhook {
    Webhook::builder()
        .connector("mailchimp")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body)
        .build()
}

/// `pairs` with `key` set to `value` (`None`: removed).
fn with(pairs: &[(&str, &str)], key: &str, value: Option<&str>) -> Webhook {
    let mut out: Vec<(&str, &str)> = pairs.iter().copied().filter(|(k, _)| *k != key).collect();
    if let Some(value) = value {
        out.push((key, value));
    }
    webhook(&out)
}

fn host() -> TestHost {
    TestHost::new().setting("crm_url", CRM)
}

/// The one delivery of an event, and its JSON body.
fn deliver(host: &TestHost, webhook: &Webhook) -> (Delivery, Value) {
    let mut out = host.handle::<Mailchimp>(webhook).unwrap();
    assert_eq!(out.len(), 1, "{out:?}");
    let delivery = out.remove(0);
    let body = serde_json::from_slice(&delivery.body).unwrap();
    (delivery, body)
}

fn rejection(host: &TestHost, webhook: &Webhook) -> String {
    match host.handle::<Mailchimp>(webhook) {
        Err(Failure::Reject(message)) => message,
        other => panic!("expected a rejection, got {other:?}"),
    }
}

#[test]
fn manifest_describes_the_connector() {
    let m = Mailchimp::manifest();
    assert_eq!(m.name, "mailchimp");
    assert_eq!(m.version, env!("CARGO_PKG_VERSION"));
    assert_eq!(m.default_scheme, "token");
    let settings: Vec<_> = m
        .settings
        .iter()
        .map(|s| (s.name.as_str(), s.required))
        .collect();
    assert_eq!(settings, [("crm_url", true), ("crm_token", false)]);
}

#[test]
fn subscribe_upserts_the_contact_with_every_merge_field() {
    let host = host();
    let (delivery, body) = deliver(&host, &webhook(SUBSCRIBE));
    assert_eq!(delivery.method, "PUT");
    assert_eq!(
        delivery.url,
        "http://crm.test/api/contacts/api%40mailchimp.com"
    );
    assert_eq!(
        delivery.header_value("content-type"),
        Some("application/json")
    );
    assert_eq!(
        delivery.header_value("x-mailchimp-event"),
        Some("subscribe")
    );
    assert_eq!(delivery.header_value("authorization"), None);
    assert_eq!(
        body,
        json!({
            "email": "api@mailchimp.com",
            "first_name": "Mailchimp",
            "last_name": "API",
            "merge_fields": {
                "EMAIL": "api@mailchimp.com",
                "FNAME": "Mailchimp",
                "LNAME": "API",
                "INTERESTS": "Group1,Group2",
                "GROUPINGS": {"0": {"id": "1", "name": "Interests", "groups": "Group1, Group2"}},
            },
            "list_id": "a6b5da1054",
            "mailchimp_id": "8a25ff1d98",
            "email_type": "html",
            "ip_opt": "10.20.10.30",
            "ip_signup": "10.20.10.30",
            "status": "subscribed",
            "source": "mailchimp",
            "event": "subscribe",
            "fired_at": "2009-03-26T21:35:57Z",
        })
    );
    assert_eq!(
        host.logs(),
        [(
            Level::Info,
            "subscribe api@mailchimp.com: PUT /contacts/api%40mailchimp.com".to_owned()
        )]
    );
    assert!(host.fetches().is_empty(), "deliveries are not fetched");
}

#[test]
fn percent_encoded_brackets_parse_the_same() {
    let body = "type=subscribe&fired_at=2009-03-26+21%3A35%3A57\
                &data%5Bemail%5D=api%40mailchimp.com&data%5Bmerges%5D%5BFNAME%5D=Ada\
                &data[merges][LNAME]=Lovelace&data%5Blist_id%5D=a6b5da1054";
    let (_, sent) = deliver(&host(), &raw(body));
    assert_eq!(sent["email"], "api@mailchimp.com");
    assert_eq!(sent["first_name"], "Ada");
    assert_eq!(sent["last_name"], "Lovelace");
    assert_eq!(
        sent["merge_fields"],
        json!({"FNAME": "Ada", "LNAME": "Lovelace"})
    );
    assert_eq!(sent["list_id"], "a6b5da1054");
}

#[test]
fn profile_upserts_without_touching_the_subscription_status() {
    let (delivery, body) = deliver(&host(), &webhook(PROFILE));
    assert_eq!(delivery.method, "PUT");
    assert_eq!(
        delivery.url,
        "http://crm.test/api/contacts/api%40mailchimp.com"
    );
    assert_eq!(delivery.header_value("x-mailchimp-event"), Some("profile"));
    assert_eq!(body["event"], "profile");
    assert_eq!(body["first_name"], "Mailchimp");
    assert_eq!(body["merge_fields"]["INTERESTS"], "Group1,Group2");
    assert_eq!(body["fired_at"], "2009-03-26T21:31:21Z");
    assert!(body.get("status").is_none(), "{body}");
    assert!(
        body.get("ip_signup").is_none(),
        "fields Mailchimp did not send are absent"
    );
}

#[test]
fn fields_mailchimp_did_not_send_are_left_out() {
    let (_, body) = deliver(
        &host(),
        &webhook(&[
            ("type", "subscribe"),
            ("fired_at", "2024-01-02 03:04:05"),
            ("data[email]", "x@example.com"),
            ("data[merges][LNAME]", ""),
        ]),
    );
    assert_eq!(
        body,
        json!({
            "email": "x@example.com",
            "last_name": "",
            "merge_fields": {"LNAME": ""},
            "status": "subscribed",
            "source": "mailchimp",
            "event": "subscribe",
            "fired_at": "2024-01-02T03:04:05Z",
        }),
        "an empty merge is sent (it clears the field); a missing one is not"
    );
}

#[test]
fn upemail_moves_the_contact_to_the_new_address() {
    let (delivery, body) = deliver(&host(), &webhook(UPEMAIL));
    assert_eq!(delivery.method, "PUT");
    assert_eq!(
        delivery.url,
        "http://crm.test/api/contacts/api%2Bnew%40mailchimp.com"
    );
    assert_eq!(delivery.header_value("x-mailchimp-event"), Some("upemail"));
    assert_eq!(
        body,
        json!({
            "email": "api+new@mailchimp.com",
            "old_email": "api+old@mailchimp.com",
            "list_id": "a6b5da1054",
            "mailchimp_id": "51da8c3259",
            "source": "mailchimp",
            "event": "upemail",
            "fired_at": "2009-03-26T22:15:09Z",
        })
    );
}

#[test]
fn unsubscribe_marks_the_contact_with_the_reason() {
    let (delivery, body) = deliver(&host(), &webhook(UNSUBSCRIBE));
    assert_eq!(delivery.method, "PUT");
    assert_eq!(
        delivery.url,
        "http://crm.test/api/contacts/api%2Bunsub%40mailchimp.com/subscription"
    );
    assert_eq!(
        body,
        json!({
            "email": "api+unsub@mailchimp.com",
            "status": "unsubscribed",
            "reason": "manual",
            "action": "unsub",
            "list_id": "a6b5da1054",
            "campaign_id": "cb398d21d2",
            "mailchimp_id": "8a25ff1d98",
            "source": "mailchimp",
            "event": "unsubscribe",
            "fired_at": "2009-03-26T21:40:57Z",
        })
    );

    // `action` is sometimes missing, `delete` means the member was removed from the list:
    // either way the contact is unsubscribed, and the fields say what Mailchimp sent.
    let (_, body) = deliver(&host(), &with(UNSUBSCRIBE, "data[action]", None));
    assert_eq!(body["status"], "unsubscribed");
    assert_eq!(body["action"], Value::Null);
    let (_, body) = deliver(&host(), &with(UNSUBSCRIBE, "data[action]", Some("delete")));
    assert_eq!(
        (&body["status"], &body["action"]),
        (&json!("unsubscribed"), &json!("delete"))
    );
    let (_, body) = deliver(&host(), &with(UNSUBSCRIBE, "data[reason]", Some("abuse")));
    assert_eq!(body["reason"], "abuse");
}

#[test]
fn cleaned_marks_the_contact_cleaned() {
    let (delivery, body) = deliver(&host(), &webhook(CLEANED));
    assert_eq!(
        delivery.url,
        "http://crm.test/api/contacts/api%2Bcleaned%40mailchimp.com/subscription"
    );
    assert_eq!(delivery.header_value("x-mailchimp-event"), Some("cleaned"));
    assert_eq!(
        body,
        json!({
            "email": "api+cleaned@mailchimp.com",
            "status": "cleaned",
            "reason": "hard",
            "action": null,
            "list_id": "a6b5da1054",
            "campaign_id": "4fjk2ma9xd",
            "mailchimp_id": null,
            "source": "mailchimp",
            "event": "cleaned",
            "fired_at": "2009-03-26T22:01:00Z",
        })
    );
}

#[test]
fn campaign_is_logged_and_not_delivered() {
    // No CRM is needed for it.
    let host = TestHost::new();
    assert_eq!(host.handle::<Mailchimp>(&webhook(CAMPAIGN)), Ok(vec![]));
    assert_eq!(
        host.logs(),
        [(
            Level::Info,
            "campaign 5aa2102003 (\"Test Campaign Subject\") sent on list a6b5da1054: \
             nothing to do in the CRM"
                .to_owned()
        )]
    );
    assert!(host.fetches().is_empty());
}

#[test]
fn crm_token_is_sent_as_a_bearer_token() {
    let host = host().setting("crm_token", " crm_secret_123 ");
    for event in [SUBSCRIBE, PROFILE, UPEMAIL, UNSUBSCRIBE, CLEANED] {
        let (delivery, _) = deliver(&host, &webhook(event));
        assert_eq!(
            delivery.header_value("authorization"),
            Some("Bearer crm_secret_123")
        );
    }
    let blank = TestHost::new()
        .setting("crm_url", CRM)
        .setting("crm_token", "  ");
    let (delivery, _) = deliver(&blank, &webhook(SUBSCRIBE));
    assert_eq!(delivery.header_value("authorization"), None);
}

#[test]
fn the_address_is_lowercased_and_one_path_segment() {
    let host = host();
    let (delivery, body) = deliver(
        &host,
        &with(
            SUBSCRIBE,
            "data[email]",
            Some(" Ada.Lovelace+News/x?y#z%@Example.COM "),
        ),
    );
    assert_eq!(
        delivery.url,
        "http://crm.test/api/contacts/ada.lovelace%2Bnews%2Fx%3Fy%23z%25%40example.com"
    );
    assert_eq!(body["email"], "Ada.Lovelace+News/x?y#z%@Example.COM");
    let (delivery, _) = deliver(
        &host,
        &with(SUBSCRIBE, "data[email]", Some("Zoë@Exämple.org")),
    );
    assert_eq!(
        delivery.url,
        "http://crm.test/api/contacts/zo%C3%AB%40ex%C3%A4mple.org"
    );
}

#[test]
fn crm_url_is_checked_and_its_trailing_slash_dropped() {
    let (delivery, _) = deliver(
        &TestHost::new().setting("crm_url", " https://crm.example.com/api/ "),
        &webhook(CLEANED),
    );
    assert_eq!(
        delivery.url,
        "https://crm.example.com/api/contacts/api%2Bcleaned%40mailchimp.com/subscription"
    );
    assert_eq!(
        TestHost::new().handle::<Mailchimp>(&webhook(SUBSCRIBE)),
        Err(Failure::Reject("setting `crm_url` is not set".into()))
    );
    for bad in [
        "crm.example.com",
        "ftp://crm",
        "https://",
        "http://crm/api?key=1",
        "http://crm/#x",
    ] {
        let message = rejection(
            &TestHost::new().setting("crm_url", bad),
            &webhook(SUBSCRIBE),
        );
        assert!(
            message.starts_with("setting `crm_url` must be an http"),
            "{bad}: {message}"
        );
    }
}

#[test]
fn dedupe_key_is_type_fired_at_list_and_address() {
    let host = TestHost::new();
    let key = |pairs: &[(&str, &str)]| host.dedupe_key::<Mailchimp>(&webhook(pairs));
    assert_eq!(
        key(SUBSCRIBE).as_deref(),
        Some("subscribe|2009-03-26 21:35:57|a6b5da1054|api@mailchimp.com")
    );
    assert_eq!(
        key(UNSUBSCRIBE).as_deref(),
        Some("unsubscribe|2009-03-26 21:40:57|a6b5da1054|api+unsub@mailchimp.com")
    );
    assert_eq!(
        key(CLEANED).as_deref(),
        Some("cleaned|2009-03-26 22:01:00|a6b5da1054|api+cleaned@mailchimp.com")
    );
    assert_eq!(
        key(UPEMAIL).as_deref(),
        Some("upemail|2009-03-26 22:15:09|a6b5da1054|api+old@mailchimp.com|api+new@mailchimp.com")
    );
    assert_eq!(
        key(CAMPAIGN).as_deref(),
        Some("campaign|2009-03-26 21:31:21|a6b5da1054|5aa2102003")
    );
    let profile = key(PROFILE).unwrap();
    assert!(
        profile.starts_with("profile|2009-03-26 21:31:21|a6b5da1054|api@mailchimp.com|"),
        "{profile}"
    );
    assert_eq!(profile.rsplit('|').next().unwrap().len(), 16, "{profile}");

    // Mailchimp retrying the same event: the same key, whatever the case of the address
    // or the order of the fields.
    let mut reordered: Vec<_> = SUBSCRIBE.to_vec();
    reordered.reverse();
    assert_eq!(key(&reordered), key(SUBSCRIBE));
    assert_eq!(
        host.dedupe_key::<Mailchimp>(&with(SUBSCRIBE, "data[email]", Some("API@MailChimp.com"))),
        key(SUBSCRIBE)
    );
    let mut reordered: Vec<_> = PROFILE.to_vec();
    reordered.reverse();
    assert_eq!(key(&reordered).unwrap(), profile);

    // Different events: different keys.
    for (field, value) in [
        ("fired_at", "2009-03-26 21:35:58"),
        ("data[email]", "other@mailchimp.com"),
        ("data[list_id]", "b000000000"),
    ] {
        assert_ne!(
            host.dedupe_key::<Mailchimp>(&with(SUBSCRIBE, field, Some(value))),
            key(SUBSCRIBE),
            "{field}"
        );
    }
    assert_ne!(
        host.dedupe_key::<Mailchimp>(&with(SUBSCRIBE, "type", Some("profile"))),
        key(SUBSCRIBE)
    );
    // Two different profile updates within the same second are both applied.
    assert_ne!(
        host.dedupe_key::<Mailchimp>(&with(PROFILE, "data[merges][FNAME]", Some("Ada")))
            .unwrap(),
        profile
    );
    // A missing list id leaves its place empty.
    assert_eq!(
        host.dedupe_key::<Mailchimp>(&with(SUBSCRIBE, "data[list_id]", None))
            .as_deref(),
        Some("subscribe|2009-03-26 21:35:57||api@mailchimp.com")
    );
}

#[test]
fn no_dedupe_key_for_what_handle_rejects() {
    let host = TestHost::new();
    for webhook in [
        raw(""),
        raw("mandrill_events=%5B%5D"),
        raw("{\"type\":\"subscribe\"}"),
        with(SUBSCRIBE, "type", Some("bounce")),
        with(SUBSCRIBE, "fired_at", None),
        with(SUBSCRIBE, "fired_at", Some("yesterday")),
        with(SUBSCRIBE, "data[email]", None),
        with(UPEMAIL, "data[new_email]", None),
        with(CAMPAIGN, "data[id]", None),
    ] {
        assert_eq!(host.dedupe_key::<Mailchimp>(&webhook), None, "{webhook:?}");
    }
}

#[test]
fn bodies_without_a_type_are_rejected_saying_why() {
    let host = host();
    let message = rejection(&host, &raw(""));
    assert!(
        message.starts_with("empty body: no Mailchimp event (`type` is missing)"),
        "{message}"
    );
    let message = rejection(&host, &raw("mandrill_events=%5B%5D"));
    assert!(
        message.starts_with("no `type` field: this is a Mailchimp Transactional (Mandrill)"),
        "{message}"
    );
    for body in [
        "fired_at=2009-03-26+21%3A35%3A57&data[email]=a%40b.c",
        "{\"type\":\"subscribe\"}",
        "type=",
        "type=+",
    ] {
        let message = rejection(&host, &raw(body));
        assert!(message.contains("`type`"), "{body}: {message}");
    }
}

#[test]
fn unknown_types_are_rejected() {
    let message = rejection(&host(), &with(SUBSCRIBE, "type", Some("Subscribe")));
    assert_eq!(
        message,
        "unknown Mailchimp event type \"Subscribe\" in `type` (expected subscribe, \
         unsubscribe, profile, upemail, cleaned or campaign)"
    );
}

#[test]
fn missing_fields_are_rejected_by_name() {
    let host = host();
    let cases: [(Pairs, &str, &str); 9] = [
        (
            SUBSCRIBE,
            "data[email]",
            "`subscribe` event has no `data[email]`",
        ),
        (
            PROFILE,
            "data[email]",
            "`profile` event has no `data[email]`",
        ),
        (
            UNSUBSCRIBE,
            "data[email]",
            "`unsubscribe` event has no `data[email]`",
        ),
        (
            CLEANED,
            "data[email]",
            "`cleaned` event has no `data[email]`",
        ),
        (
            UPEMAIL,
            "data[new_email]",
            "`upemail` event has no `data[new_email]`",
        ),
        (
            UPEMAIL,
            "data[old_email]",
            "`upemail` event has no `data[old_email]`",
        ),
        (SUBSCRIBE, "fired_at", "`subscribe` event has no `fired_at`"),
        (CLEANED, "fired_at", "`cleaned` event has no `fired_at`"),
        (CAMPAIGN, "fired_at", "`campaign` event has no `fired_at`"),
    ];
    for (event, field, expected) in cases {
        assert_eq!(rejection(&host, &with(event, field, None)), expected);
        if field != "fired_at" {
            assert_eq!(
                rejection(&host, &with(event, field, Some("  "))),
                expected,
                "blank {field}"
            );
        }
    }
    // `data` sent as a plain value has no `data[email]` either.
    assert_eq!(
        rejection(
            &host,
            &raw("type=subscribe&fired_at=2009-03-26+21%3A35%3A57&data=x")
        ),
        "`subscribe` event has no `data[email]`"
    );
}

#[test]
fn malformed_values_are_rejected() {
    let host = host();
    for bad in [
        "not-an-address",
        "@mailchimp.com",
        "api@",
        "a b@c.d",
        "a@b\u{7}.c",
    ] {
        assert_eq!(
            rejection(&host, &with(SUBSCRIBE, "data[email]", Some(bad))),
            format!("`data[email]` of the `subscribe` event is not an email address: {bad:?}")
        );
    }
    assert_eq!(
        rejection(&host, &with(UPEMAIL, "data[old_email]", Some("old"))),
        "`data[old_email]` of the `upemail` event is not an email address: \"old\""
    );
    for bad in [
        "2009-03-26",
        "2009-03-26T21:35:57+00:00",
        "2009/03/26 21:35:57",
        "2009-13-26 21:35:57",
        "2009-03-26 24:00:00",
        "2009-03-00 21:35:57",
        "２009-03-26 21:35:5",
        "20a9-03-26 21:35:57",
    ] {
        assert_eq!(
            rejection(&host, &with(SUBSCRIBE, "fired_at", Some(bad))),
            format!("`fired_at` of the `subscribe` event is not `YYYY-MM-DD HH:MM:SS`: {bad:?}")
        );
    }
    assert_eq!(
        rejection(&host, &with(SUBSCRIBE, "data[merges]", Some("x"))),
        "`data[merges]` of the `subscribe` event is not a set of merge fields"
    );
}

#[test]
fn fired_at_becomes_rfc3339() {
    assert_eq!(
        rfc3339("2009-03-26 21:35:57").as_deref(),
        Some("2009-03-26T21:35:57Z")
    );
    assert_eq!(
        rfc3339("2024-02-29T00:00:60").as_deref(),
        Some("2024-02-29T00:00:60Z")
    );
    assert_eq!(rfc3339(""), None);
    assert_eq!(rfc3339("2009-03-26 21:35:57Z"), None);
}

#[test]
fn odd_bodies_never_panic() {
    // A deterministic byte soup around the real shapes: `handle` and `dedupe_key` must
    // answer (a delivery or a failure) for every one of them.
    let host = host();
    let pieces = [
        "type=",
        "subscribe",
        "profile",
        "upemail",
        "&",
        "=",
        "[",
        "]",
        "data",
        "[email]",
        "[merges]",
        "[]",
        "%",
        "%5B",
        "%ZZ",
        "%FF",
        "@",
        "fired_at=2009-03-26+21:35:57",
        "data[new_email]=a@b",
        "data[old_email]=c@d",
        "+",
        "\u{0}",
        "é",
        "[0]",
        "type=cleaned",
    ];
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..5_000 {
        let mut body = String::new();
        for _ in 0..(seed % 12) {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            body.push_str(pieces[(seed >> 33) as usize % pieces.len()]);
        }
        seed = seed.wrapping_add(1);
        let webhook = raw(&body);
        let _ = host.handle::<Mailchimp>(&webhook);
        let _ = host.dedupe_key::<Mailchimp>(&webhook);
    }
}
