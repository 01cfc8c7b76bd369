//! `kv`: small per-connector state in the host's store, namespaced by connector id.

use super::{CallState, MAX_KV_KEY_BYTES, MAX_KV_VALUE_BYTES};
use crate::plugin::bindings::v0_1_0::switchyard::connector::kv::Host;

impl Host for CallState {
    async fn get(&mut self, key: String) -> Option<Vec<u8>> {
        match self
            .grants
            .storage
            .kv_get(&self.grants.connector, &key)
            .await
        {
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
        self.grants
            .storage
            .kv_set(&self.grants.connector, &key, &value)
            .await
            .map_err(|err| format!("kv set failed: {err}"))
    }

    async fn delete(&mut self, key: String) {
        if let Err(err) = self
            .grants
            .storage
            .kv_delete(&self.grants.connector, &key)
            .await
        {
            tracing::warn!(connector = %self.grants.connector, "kv delete failed: {err}");
        }
    }
}
