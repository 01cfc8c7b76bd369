//! The XenForo REST API: the user lookups and the write of the secondary groups, and how
//! XenForo's answers become failures.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use serde_json::Value;
use switchyard_sdk::{Ctx, Failure, Request, Response};

use crate::settings::Settings;

/// The part of a XenForo user the connector reads.
pub(crate) struct XfUser {
    pub(crate) user_id: u64,
    /// `None` when the answer did not include them (the key's visibility); read them from
    /// `GET /api/users/{id}/` then.
    pub(crate) secondary_group_ids: Option<BTreeSet<u64>>,
}

/// The XenForo REST API, through `ctx.fetch` (reads and the write).
pub(crate) struct XenForo<'a, 'h> {
    ctx: &'a Ctx<'h>,
    settings: &'a Settings,
}

impl<'a, 'h> XenForo<'a, 'h> {
    pub(crate) fn new(ctx: &'a Ctx<'h>, settings: &'a Settings) -> Self {
        XenForo { ctx, settings }
    }

    /// `GET /api/users/find-email?email=…` → the user, or a rejection when none has it.
    pub(crate) fn find_user(&self, email: &str) -> Result<XfUser, Failure> {
        let query =
            serde_urlencoded::to_string([("email", email), ("api_bypass_permissions", "1")])
                .map_err(|e| Failure::reject(format!("encoding the email {email:?}: {e}")))?;
        let what = format!("looking up the XenForo user with email {email}");
        let body = self.get(
            &format!("{}/users/find-email?{query}", self.settings.api),
            &what,
        )?;
        match body.get("user") {
            Some(Value::Null) => Err(Failure::reject(format!(
                "no XenForo user with email {email}"
            ))),
            Some(user) => parse_user(user).map_err(|f| f.context(&what)),
            None => Err(Failure::retry(format!(
                "{what}: the answer has no `user` field"
            ))),
        }
    }

    /// `GET /api/users/{id}/` → the user's secondary groups.
    pub(crate) fn user_groups(&self, user_id: u64) -> Result<BTreeSet<u64>, Failure> {
        let what = format!("reading XenForo user {user_id}");
        let body = self.get(
            &format!(
                "{}/users/{user_id}/?api_bypass_permissions=1",
                self.settings.api
            ),
            &what,
        )?;
        let user = parse_user(&body["user"]).map_err(|f| f.context(&what))?;
        user.secondary_group_ids.ok_or_else(|| {
            Failure::reject(format!(
                "{what}: the answer has no `secondary_group_ids`; is `api_key` a super user \
                 key?"
            ))
        })
    }

    /// `POST /api/users/{id}/` with the whole secondary group set, now (`ctx.fetch`).
    ///
    /// `secondary_group_ids[]=N` once per group. An empty set is sent as the bare key
    /// `secondary_group_ids=`: XenForo reads the field as `?array-uint`, so a present
    /// non-array value becomes `[]` and clears the set, whereas `secondary_group_ids[]=`
    /// would be the list `[0]`, and omitting the field would leave the groups unchanged.
    ///
    /// Classified like the lookups: 408/425/429/5xx, a timeout or a connection error retry
    /// the event (which reads the groups again first), other statuses reject it naming
    /// XenForo's error code. A write that timed out may still have been applied: the retry
    /// then finds the set already there and writes nothing.
    pub(crate) fn write_groups(&self, user_id: u64, groups: &BTreeSet<u64>) -> Result<(), Failure> {
        let what = format!("writing the secondary groups of XenForo user {user_id}");
        let mut form: Vec<(&str, String)> = vec![("api_bypass_permissions", "1".to_owned())];
        if groups.is_empty() {
            form.push(("secondary_group_ids", String::new()));
        } else {
            form.extend(
                groups
                    .iter()
                    .map(|g| ("secondary_group_ids[]", g.to_string())),
            );
        }
        let request = self
            .request("POST", &format!("{}/users/{user_id}/", self.settings.api))
            .try_form(&form)?;
        let response = self
            .ctx
            .fetch(request)
            .map_err(|e| Failure::from(e).context(&what))?;
        let response = check(response, &what)?;
        // XenForo answers with the saved user. A different set (a group id XenForo
        // dropped) is worth a line in the attempt's log, not a failure: the write was
        // accepted, and writing it again would give the same answer.
        let saved = response
            .json::<Value>()
            .ok()
            .and_then(|body| parse_user(&body["user"]).ok())
            .and_then(|user| user.secondary_group_ids);
        if let Some(saved) = saved.filter(|saved| saved != groups) {
            self.ctx.warn(format!(
                "{what}: sent {}, XenForo saved {}",
                list(groups),
                list(&saved)
            ));
        }
        Ok(())
    }

    /// A request with the API headers.
    fn request(&self, method: &str, url: &str) -> Request {
        Request::new(method, url)
            .header("XF-Api-Key", &self.settings.api_key)
            .header("XF-Api-User", &self.settings.api_user)
            .header("accept", "application/json")
    }

    /// A GET with the API headers; XenForo errors become failures naming their codes.
    fn get(&self, url: &str, what: &str) -> Result<Value, Failure> {
        let response = self
            .ctx
            .fetch(self.request("GET", url))
            .map_err(|e| Failure::from(e).context(what))?;
        check(response, what)?
            .json::<Value>()
            .map_err(|f| f.context(what))
    }
}

/// A 2xx passes. Otherwise 408/425/429/5xx retry and other statuses reject, with XenForo's
/// error codes (`{"errors":[{"code","message"}]}`) in the message: operators branch on the
/// code, not on the wording.
fn check(response: Response, what: &str) -> Result<Response, Failure> {
    if response.is_success() {
        return Ok(response);
    }
    let status = response.status;
    let detail = xenforo_errors(&response).unwrap_or_else(|| {
        let text = String::from_utf8_lossy(&response.body);
        let text: String = text.trim().chars().take(200).collect();
        if text.is_empty() {
            "(empty body)".to_owned()
        } else {
            text
        }
    });
    let message = format!("{what}: XenForo answered HTTP {status}: {detail}");
    Err(match status {
        408 | 425 | 429 | 500..=599 => Failure::Retry(message),
        _ => Failure::Reject(message),
    })
}

/// `code (message)` for each entry of XenForo's `errors` list; `None` for another body.
fn xenforo_errors(response: &Response) -> Option<String> {
    let body: Value = serde_json::from_slice(&response.body).ok()?;
    let errors = body.get("errors")?.as_array()?;
    let mut out = String::new();
    for error in errors {
        let code = error.get("code").and_then(Value::as_str).unwrap_or("?");
        if !out.is_empty() {
            out.push_str("; ");
        }
        out.push_str(code);
        if let Some(message) = error.get("message").and_then(Value::as_str) {
            let _ = write!(out, " ({message})");
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A XenForo `User` object: `user_id` and, when visible, `secondary_group_ids`.
fn parse_user(user: &Value) -> Result<XfUser, Failure> {
    let id = |v: &Value| match v {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse::<u64>().ok(),
        _ => None,
    };
    let Some(user_id) = user.get("user_id").and_then(id).filter(|id| *id > 0) else {
        return Err(Failure::retry("the answer has no valid `user.user_id`"));
    };
    let secondary_group_ids = match user.get("secondary_group_ids") {
        None | Some(Value::Null) => None,
        Some(Value::Array(items)) => Some(
            items
                .iter()
                .map(|v| id(v).ok_or(v))
                .collect::<Result<_, _>>()
                .map_err(|v| {
                    Failure::retry(format!("`secondary_group_ids` holds {v}, not a group id"))
                })?,
        ),
        Some(other) => {
            return Err(Failure::retry(format!(
                "`secondary_group_ids` is {other}, not a list"
            )));
        }
    };
    Ok(XfUser {
        user_id,
        secondary_group_ids,
    })
}

/// `[3, 5]` for log lines.
pub(crate) fn list(groups: &BTreeSet<u64>) -> String {
    let items: Vec<String> = groups.iter().map(u64::to_string).collect();
    format!("[{}]", items.join(", "))
}
