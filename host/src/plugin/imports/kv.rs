//! `kv`: small per-connector state in the host's store, namespaced by connector id.

use super::{CallState, MAX_KV_KEY_BYTES, MAX_KV_KEYS, MAX_KV_VALUE_BYTES};
use crate::plugin::bindings::current::switchyard::connector::kv::Host;
use crate::store::Kv;

/// Whether `key` may be written: it exists already, or the connector holds fewer than
/// [`MAX_KV_KEYS`] keys. Only a new key pays for the count, which stops at the bound.
/// Two hosts adding keys at once may pass the bound by a few (NATS backend).
async fn room_for(kv: &Kv, key: &str) -> crate::store::Result<bool> {
    if kv.get(key).await?.is_some() {
        return Ok(true);
    }
    Ok(kv.count(MAX_KV_KEYS).await? < MAX_KV_KEYS)
}

impl Host for CallState {
    async fn get(&mut self, key: String) -> Option<Vec<u8>> {
        match self.grants.kv.get(&key).await {
            Ok(value) => value,
            Err(err) => {
                tracing::warn!(connector = %self.grants.connector, "kv get failed: {err}");
                None
            }
        }
    }

    async fn set(&mut self, key: String, value: Vec<u8>) -> Result<(), String> {
        if key.len() > MAX_KV_KEY_BYTES {
            return Err(format!("kv key longer than {MAX_KV_KEY_BYTES} bytes"));
        }
        if value.len() > MAX_KV_VALUE_BYTES {
            return Err(format!("kv value larger than {MAX_KV_VALUE_BYTES} bytes"));
        }
        let kv = &self.grants.kv;
        room_for(kv, &key)
            .await
            .map_err(|err| format!("kv set failed: {err}"))?
            .then_some(())
            .ok_or_else(|| {
                format!("kv holds {MAX_KV_KEYS} keys already (the most per connector)")
            })?;
        kv.set(&key, &value)
            .await
            .map_err(|err| format!("kv set failed: {err}"))
    }

    async fn delete(&mut self, key: String) {
        if let Err(err) = self.grants.kv.delete(&key).await {
            tracing::warn!(connector = %self.grants.connector, "kv delete failed: {err}");
        }
    }
}
