//! `log.emit`: connector log lines, kept with the attempt and mirrored to tracing.

use super::{CallState, MAX_LOG_LINE_BYTES, MAX_LOG_LINES};
use crate::plugin::bindings::current::switchyard::connector::log::{Host, Level};

pub use crate::store::LogLine;

impl Host for CallState {
    async fn emit(&mut self, level: Level, message: String) {
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        let message = crate::secret::redact(&message, &self.grants.secrets).into_owned();
        tracing::debug!(connector = %self.grants.connector, level, "{message}");
        // A connector that logs in a loop costs the host one marker line, not memory.
        if self.logs.len() > MAX_LOG_LINES {
            return;
        }
        if self.logs.len() == MAX_LOG_LINES {
            self.logs.push(LogLine {
                at: crate::time::now_ms(),
                level: "warn".into(),
                message: format!("further lines dropped: at most {MAX_LOG_LINES} per call"),
            });
            return;
        }
        let mut message = message;
        if message.len() > MAX_LOG_LINE_BYTES {
            let mut cut = MAX_LOG_LINE_BYTES;
            while !message.is_char_boundary(cut) {
                cut -= 1;
            }
            message.truncate(cut);
            message.push('…');
        }
        self.logs.push(LogLine {
            at: crate::time::now_ms(),
            level: level.to_string(),
            message,
        });
    }
}
