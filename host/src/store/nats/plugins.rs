//! Connector builds for every node: a JetStream object store, `P_plugins`, holds each
//! `.wasm` by its file name. `switchyard plugin push` (or `POST /v1/plugins/{name}`) puts a
//! build there; every node copies each build that differs from its own into its
//! `plugins.dir` (checked against the store's SHA-256 digest, written to a temporary name
//! and renamed), and reloads: the same path as a file dropped in the folder, so a bad build
//! is refused with `last_error` on every node and the previous one keeps serving.

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::object_store::{self, ObjectStore};
use async_nats::jetstream::stream::StorageType;
use base64::Engine as _;
use futures::StreamExt as _;
use sha2::Digest as _;
use tokio::io::AsyncReadExt as _;

use crate::config::StorageConfig;
use crate::store::{Result, StoreError};

/// Builds bigger than this are refused (the plugin engine caps them too).
pub const MAX_BUILD_BYTES: usize = 64 << 20;

/// The cluster's store of connector builds.
pub struct Plugins {
    store: ObjectStore,
}

impl std::fmt::Debug for Plugins {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Plugins").finish_non_exhaustive()
    }
}

fn unavailable<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> StoreError {
    move |err| StoreError::Unavailable(format!("{what}: {err}"))
}

/// A plugin file name the object store and every node's folder accept: `name.wasm`, of
/// letters, digits, `-`, `_` and `.`.
pub fn valid_name(name: &str) -> bool {
    name.ends_with(".wasm")
        && name.len() > 5
        && name.len() <= 128
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b == b'.')
}

/// `sha256:<hex>`, as the host names builds.
fn digest_of(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(sha2::Sha256::digest(bytes)))
}

impl Plugins {
    /// Connect and open (or create) the deployment's object store.
    pub async fn open(config: &StorageConfig) -> Result<Plugins> {
        let client = super::connect(config, "switchyard plugins")
            .await
            .map_err(|err| StoreError::Unavailable(err.to_string()))?;
        let js = async_nats::jetstream::new(client);
        let bucket = format!("{}_plugins", config.nats_prefix);
        let store = match js.get_object_store(&bucket).await {
            Ok(store) => store,
            Err(_) => js
                .create_object_store(object_store::Config {
                    bucket,
                    storage: StorageType::File,
                    num_replicas: config.replicas,
                    ..Default::default()
                })
                .await
                .map_err(unavailable("creating the plugins store"))?,
        };
        Ok(Plugins { store })
    }

    /// Put a build under `name`; its digest.
    pub async fn push(&self, name: &str, bytes: &[u8]) -> Result<String> {
        if !valid_name(name) {
            return Err(StoreError::Invalid(format!(
                "`{name}` is not a plugin file name (letters, digits, `-`, `_`, ending in .wasm)"
            )));
        }
        if bytes.len() > MAX_BUILD_BYTES {
            return Err(StoreError::Invalid(format!(
                "a build of {} bytes is larger than {MAX_BUILD_BYTES}",
                bytes.len()
            )));
        }
        let mut reader = bytes;
        self.store
            .put(name, &mut reader)
            .await
            .map_err(unavailable("storing the build"))?;
        Ok(digest_of(bytes))
    }

    /// Copy `name` into `dir` when it differs from the file there; whether it did.
    pub async fn copy_one(&self, name: &str, dir: &Path) -> Result<bool> {
        if !valid_name(name) {
            return Ok(false);
        }
        let mut object = match self.store.get(name).await {
            Ok(object) => object,
            // Deleted meanwhile (or never there): the node keeps what it has.
            Err(_) => return Ok(false),
        };
        let mut bytes = Vec::new();
        object
            .read_to_end(&mut bytes)
            .await
            .map_err(unavailable("reading a build"))?;
        // The store's digest of what was put, checked against what came.
        if let Some(expected) = object.info().digest.as_deref() {
            let got =
                base64::engine::general_purpose::URL_SAFE.encode(sha2::Sha256::digest(&bytes));
            let expected = expected.trim_start_matches("SHA-256=");
            if expected.trim_end_matches('=') != got.trim_end_matches('=') {
                return Err(StoreError::Corrupt(format!(
                    "the build {name} does not match its digest"
                )));
            }
        }
        let target = dir.join(name);
        if std::fs::read(&target).is_ok_and(|existing| existing == bytes) {
            return Ok(false);
        }
        let tmp = dir.join(format!(".{name}.tmp"));
        std::fs::create_dir_all(dir)
            .and_then(|()| std::fs::write(&tmp, &bytes))
            .and_then(|()| std::fs::rename(&tmp, &target))
            .map_err(|err| {
                StoreError::Unavailable(format!("writing {}: {err}", target.display()))
            })?;
        tracing::info!(plugin = %name, digest = %digest_of(&bytes), "a build from the cluster");
        Ok(true)
    }

    /// Copy every build that differs into `dir`; how many.
    pub async fn copy_all(&self, dir: &Path) -> Result<usize> {
        let mut list = self
            .store
            .list()
            .await
            .map_err(unavailable("listing the builds"))?;
        let mut names = Vec::new();
        while let Some(info) = list.next().await {
            let info = info.map_err(unavailable("listing the builds"))?;
            if !info.deleted {
                names.push(info.name);
            }
        }
        let mut copied = 0;
        for name in names {
            if self.copy_one(&name, dir).await? {
                copied += 1;
            }
        }
        Ok(copied)
    }

    /// Follow the store: `changed` runs after each build copied into `dir`. Also copies
    /// everything again every `RESYNC`, so a watch that stopped silently costs a delay, not
    /// a missed build.
    pub async fn follow<F, Fut>(&self, dir: &Path, mut changed: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = ()>,
    {
        const RESYNC: Duration = Duration::from_secs(30);
        loop {
            match self.copy_all(dir).await {
                Ok(0) => {}
                Ok(_) => changed().await,
                Err(err) => tracing::warn!("copying the cluster's builds: {err}"),
            }
            let mut watch = match self.store.watch().await {
                Ok(watch) => watch,
                Err(err) => {
                    tracing::warn!("watching the cluster's builds: {err}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            let resync = tokio::time::sleep(RESYNC);
            tokio::pin!(resync);
            loop {
                tokio::select! {
                    next = watch.next() => match next {
                        Some(Ok(info)) if !info.deleted => match self.copy_one(&info.name, dir).await {
                            Ok(true) => changed().await,
                            Ok(false) => {}
                            Err(err) => tracing::warn!(plugin = %info.name, "copying a build: {err}"),
                        },
                        Some(Ok(_)) => {}
                        Some(Err(err)) => {
                            tracing::warn!("watching the cluster's builds: {err}");
                            break;
                        }
                        None => break,
                    },
                    _ = &mut resync => break,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plugin_names_are_plain_wasm_file_names() {
        for ok in ["stripe.wasm", "whmcs-xenforo.wasm", "my_connector.v2.wasm"] {
            assert!(valid_name(ok), "{ok}");
        }
        for bad in [
            ".wasm",
            "stripe",
            "../x.wasm",
            "a/b.wasm",
            ".hidden.wasm",
            "sp ace.wasm",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }
}
