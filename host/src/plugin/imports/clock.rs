//! `clock.now`: the host's wall clock in unix milliseconds.

use super::CallState;
use crate::plugin::bindings::current::switchyard::connector::clock::Host;

impl Host for CallState {
    async fn now(&mut self) -> u64 {
        crate::time::now_ms()
    }
}
