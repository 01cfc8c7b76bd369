//! `settings.get`: the operator's `[connector.settings]`.

use super::CallState;
use crate::plugin::bindings::current::switchyard::connector::settings::Host;

impl Host for CallState {
    async fn get(&mut self, key: String) -> Option<String> {
        self.grants.settings.get(&key).cloned()
    }
}
