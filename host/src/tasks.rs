//! The host's background tasks: each one is tracked, so shutdown can wait for them, and
//! stops when the host shuts down.

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Where a stage spawns its background work: a handle to the host's task tracker and its
/// shutdown signal (cheap to clone; every clone spawns into the same set).
#[derive(Clone, Debug)]
pub struct Background {
    tasks: TaskTracker,
    shutdown: CancellationToken,
}

impl Background {
    pub fn new(tasks: TaskTracker, shutdown: CancellationToken) -> Background {
        Background { tasks, shutdown }
    }

    /// Run `work` until it ends or the host shuts down, whichever comes first.
    pub fn spawn<F>(&self, work: F)
    where
        F: std::future::Future<Output = ()> + Send + 'static,
    {
        let shutdown = self.shutdown.clone();
        self.tasks.spawn(async move {
            tokio::select! {
                _ = shutdown.cancelled() => {}
                _ = work => {}
            }
        });
    }

    /// A token cancelled at shutdown, or earlier by its holder (one dispatcher's stop).
    pub fn child_token(&self) -> CancellationToken {
        self.shutdown.child_token()
    }
}
