//! Hot-loading: watch `plugins.dir` and the config file, and reload when they change.
//!
//! Events are debounced (250 ms), so a burst of writes is one reload; a new, replaced or
//! removed `.wasm`, or a saved config, takes effect well within 2 seconds. Write plugins
//! atomically (copy to a temporary name in the same folder, then rename): a reload that
//! catches a half-written file refuses it and the previous version keeps serving until the
//! write completes and the next event reloads it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use notify_debouncer_mini::notify::RecursiveMode;
use notify_debouncer_mini::{DebounceEventResult, new_debouncer};

use crate::app::App;

const DEBOUNCE: Duration = Duration::from_millis(250);

/// Start watching, when `plugins.watch` is on.
pub fn start(app: &Arc<App>) -> anyhow::Result<()> {
    if !app.config.plugins.watch {
        return Ok(());
    }
    let plugins_dir = &app.config.plugins.dir;
    std::fs::create_dir_all(plugins_dir)
        .with_context(|| format!("creating {}", plugins_dir.display()))?;
    let plugins_dir = std::fs::canonicalize(plugins_dir)?;
    let config_file = match &app.config.source {
        Some(path) => Some(std::fs::canonicalize(path)?),
        None => None,
    };

    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<DebounceEventResult>();
    let mut debouncer = new_debouncer(DEBOUNCE, move |result| {
        let _ = tx.send(result);
    })
    .context("starting the file watcher")?;
    debouncer
        .watcher()
        .watch(&plugins_dir, RecursiveMode::NonRecursive)
        .with_context(|| format!("watching {}", plugins_dir.display()))?;
    // Watch the config's folder, not the file: editors and deploy tools replace the file.
    if let Some(parent) = config_file.as_deref().and_then(Path::parent) {
        debouncer
            .watcher()
            .watch(parent, RecursiveMode::NonRecursive)
            .with_context(|| format!("watching {}", parent.display()))?;
    }
    tracing::info!(dir = %plugins_dir.display(), "watching plugins and config for changes");

    let app2 = app.clone();
    let mut last = fingerprint(&plugins_dir, config_file.as_deref());
    app.spawn(async move {
        // Dropping the debouncer stops the watch: it lives as long as this task.
        let _debouncer = debouncer;
        while let Some(result) = rx.recv().await {
            let paths: Vec<PathBuf> = match result {
                Ok(events) => events.into_iter().map(|e| e.path).collect(),
                Err(err) => {
                    tracing::warn!("file watcher: {err}");
                    continue;
                }
            };
            let relevant = paths
                .iter()
                .any(|p| is_plugin(p, &plugins_dir) || Some(p) == config_file.as_ref());
            if !relevant {
                continue;
            }
            // inotify also reports opens and reads — the reload itself reads every plugin —
            // so reload only when a file's name, size or modification time changed.
            let now = fingerprint(&plugins_dir, config_file.as_deref());
            if now == last {
                continue;
            }
            last = now;
            match app2.reload(None).await {
                Ok(report) => tracing::info!(
                    loaded = ?report.loaded,
                    removed = ?report.removed,
                    failed = ?report.failed,
                    "reloaded after a file change"
                ),
                Err(err) => tracing::error!("reload after a file change failed: {err}"),
            }
        }
    });
    Ok(())
}

/// Name, size and modification time of every `.wasm` in the plugins dir and of the config.
fn fingerprint(
    plugins_dir: &Path,
    config: Option<&Path>,
) -> Vec<(PathBuf, u64, Option<std::time::SystemTime>)> {
    let stat = |path: PathBuf| {
        let meta = std::fs::metadata(&path).ok();
        let len = meta.as_ref().map_or(0, |m| m.len());
        let modified = meta.and_then(|m| m.modified().ok());
        (path, len, modified)
    };
    let mut files: Vec<_> = std::fs::read_dir(plugins_dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.path())
                .filter(|p| is_plugin(p, plugins_dir))
                .map(stat)
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    if let Some(config) = config {
        files.push(stat(config.to_path_buf()));
    }
    files
}

fn is_plugin(path: &Path, dir: &Path) -> bool {
    path.parent() == Some(dir) && path.extension().is_some_and(|e| e == "wasm")
}

/// On NATS: copy the cluster's connector builds (`switchyard plugin push`) into
/// `plugins.dir` as they change, and reload (`store/nats/plugins.rs`).
pub fn follow_cluster(app: &Arc<App>) {
    if app.config.storage.backend != crate::config::Backend::Nats {
        return;
    }
    let app2 = app.clone();
    app.spawn(async move {
        let plugins = loop {
            match crate::store::nats::plugins::Plugins::open(&app2.config.storage).await {
                Ok(plugins) => break plugins,
                Err(err) => {
                    tracing::warn!("opening the cluster's builds: {err}");
                    tokio::time::sleep(Duration::from_secs(2)).await;
                }
            }
        };
        let dir = app2.config.plugins.dir.clone();
        plugins
            .follow(&dir, || {
                let app = app2.clone();
                async move {
                    match app.reload(None).await {
                        Ok(report) => tracing::info!(
                            loaded = ?report.loaded,
                            failed = ?report.failed,
                            "reloaded after a build came from the cluster"
                        ),
                        Err(err) => tracing::error!("reload after a cluster build failed: {err}"),
                    }
                }
            })
            .await;
    });
}

/// Reload on SIGHUP, like most daemons.
#[cfg(unix)]
pub fn reload_on_sighup(app: &Arc<App>) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hup = signal(SignalKind::hangup()).context("installing the SIGHUP handler")?;
    let app2 = app.clone();
    app.spawn(async move {
        while hup.recv().await.is_some() {
            tracing::info!("SIGHUP: reloading");
            if let Err(err) = app2.reload(None).await {
                tracing::error!("reload on SIGHUP failed: {err}");
            }
        }
    });
    Ok(())
}
