//! `[connector.settings]`: the XenForo API, its key and the WHMCS product → group map.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;
use switchyard_sdk::{Ctx, Failure};

use crate::event::NO_GROUP;

/// `XF-Api-User` when `api_user` is not set: the first admin of a fresh XenForo install.
const DEFAULT_API_USER: &str = "1";

/// The connector's settings, checked up front so a bad config rejects every event with the
/// same clear message.
pub(crate) struct Settings {
    /// The API root, `{xenforo_url}/api`, without a trailing slash.
    pub(crate) api: String,
    pub(crate) api_key: String,
    pub(crate) api_user: String,
    /// Product id (digits, no leading zeros) → group id (`NO_GROUP` for none).
    pub(crate) group_map: BTreeMap<String, u64>,
}

impl Settings {
    pub(crate) fn read(ctx: &Ctx) -> Result<Settings, Failure> {
        let base = ctx.require_setting("xenforo_url")?;
        let base = base.trim().trim_end_matches('/');
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Failure::reject(format!(
                "setting `xenforo_url` must be an http(s) URL, got {base:?}"
            )));
        }
        // Accept the API root too: `https://forum.example.com/api` means the same board.
        let base = base.strip_suffix("/api").unwrap_or(base);
        let api_key = ctx.require_setting("api_key")?.trim().to_owned();
        let api_user = ctx
            .setting_or("api_user", DEFAULT_API_USER)
            .trim()
            .to_owned();
        if api_user.is_empty() || !api_user.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Failure::reject(format!(
                "setting `api_user` must be a XenForo user id, got {api_user:?}"
            )));
        }
        Ok(Settings {
            api: format!("{base}/api"),
            api_key,
            api_user,
            group_map: group_map(ctx)?,
        })
    }

    /// Every group `group_map` manages (what a package change may remove).
    pub(crate) fn mapped_groups(&self) -> BTreeSet<u64> {
        self.group_map
            .values()
            .copied()
            .filter(|g| *g != NO_GROUP)
            .collect()
    }
}

/// `group_map` as product id → group id. Values must be integers (TOML integers arrive as
/// JSON numbers); numeric strings are accepted for maps written as JSON text.
fn group_map(ctx: &Ctx) -> Result<BTreeMap<String, u64>, Failure> {
    ctx.require_setting("group_map")?;
    let raw: BTreeMap<String, Value> = ctx
        .setting_json("group_map")
        .map_err(|_| {
            Failure::reject(
                "setting `group_map` must be a table of WHMCS product id → XenForo group id, \
                 e.g. { \"12\" = 5, \"13\" = 6 }",
            )
        })?
        .unwrap_or_default();
    let mut map = BTreeMap::new();
    for (product, group) in raw {
        let product_key = product.trim();
        if product_key.is_empty() || !product_key.bytes().all(|b| b.is_ascii_digit()) {
            return Err(Failure::reject(format!(
                "setting `group_map`: key {product:?} is not a WHMCS product id"
            )));
        }
        let group_id = match &group {
            Value::Number(n) => n.as_u64(),
            Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        };
        let Some(group_id) = group_id else {
            return Err(Failure::reject(format!(
                "setting `group_map`: product {product} maps to {group}, not a XenForo user \
                 group id"
            )));
        };
        let product_key = match product_key.trim_start_matches('0') {
            "" => "0",
            digits => digits,
        };
        map.insert(product_key.to_owned(), group_id);
    }
    Ok(map)
}
