//! The live set of connectors: each one's config, verifier, grants and loaded plugin.
//!
//! The map is swapped atomically ([`ArcSwap`]), so a request sees one consistent version
//! of a connector for its whole life while a reload builds the next one off the request
//! path.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;

use super::engine::{Plugin, Runtime};
use super::imports::{AllowedHosts, Grants};
use crate::config::{ConnectorConfig, MissingParams, RetryConfig, SchemeName};
use crate::store::Storage;
use crate::verify::{HmacParams, Verifier};

/// One connector as configured and loaded.
pub struct Connector {
    /// The effective config (an API pause or resume is applied to `paused`).
    pub config: ConnectorConfig,
    pub grants: Arc<Grants>,
    /// The version serving events. `None` when no version could ever be loaded: its route
    /// answers 503 so a sender retries instead of losing events.
    pub plugin: Option<Arc<Plugin>>,
    /// Why the newest load failed, even while an older version keeps serving.
    pub last_error: Option<String>,
    /// Built from the config and the plugin's declared scheme.
    pub verifier: Result<Verifier, String>,
}

impl Connector {
    pub fn retry(&self) -> &RetryConfig {
        &self.config.retry
    }

    /// Why this connector cannot take events right now, if it cannot.
    pub fn unavailable(&self) -> Option<&str> {
        if self.plugin.is_none() {
            return Some(self.last_error.as_deref().unwrap_or("no plugin loaded"));
        }
        self.verifier.as_ref().err().map(String::as_str)
    }
}

/// Connector id → connector.
#[derive(Default)]
pub struct Registry {
    connectors: ArcSwap<HashMap<String, Arc<Connector>>>,
}

impl Registry {
    pub fn get(&self, id: &str) -> Option<Arc<Connector>> {
        self.connectors.load().get(id).cloned()
    }

    pub fn all(&self) -> Vec<Arc<Connector>> {
        let mut all: Vec<_> = self.connectors.load().values().cloned().collect();
        all.sort_by(|a, b| a.config.id.cmp(&b.config.id));
        all
    }

    /// Swap in one connector, leaving the others as they are.
    pub fn insert(&self, connector: Arc<Connector>) {
        self.connectors.rcu(|current| {
            let mut next = HashMap::clone(current);
            next.insert(connector.config.id.clone(), connector.clone());
            next
        });
    }

    pub fn replace(&self, connectors: HashMap<String, Arc<Connector>>) {
        self.connectors.store(Arc::new(connectors));
    }
}

/// Build the next version of one connector from its config and its `.wasm` in
/// `plugins_dir`. Never fails: a missing or broken `.wasm` gives a connector that reports
/// the error. When `previous` serves a plugin and the new bytes cannot be loaded, the
/// previous plugin keeps serving (a bad deploy is refused, not applied); unchanged bytes
/// are not compiled again.
pub async fn load_connector(
    runtime: &Runtime,
    plugins_dir: &Path,
    config: &ConnectorConfig,
    storage: Arc<dyn Storage>,
    http: reqwest::Client,
    previous: Option<&Connector>,
) -> Connector {
    let grants = Arc::new(Grants {
        connector: config.id.clone(),
        settings: config.settings.clone(),
        secrets: config.setting_secrets(),
        allowed_hosts: AllowedHosts::new(&config.allowed_hosts),
        kv: crate::store::Kv::new(storage, &config.id),
        http,
        fetch_timeout: config.retry.timeout,
    });
    let old_plugin = previous.and_then(|p| p.plugin.clone());
    let path = plugins_dir.join(&config.plugin);
    let (plugin, last_error) = match tokio::fs::read(&path).await {
        Err(err) => {
            // A removed file unloads the connector: 503 until it is back.
            (None, Some(format!("cannot read {}: {err}", path.display())))
        }
        Ok(bytes) => {
            let digest = super::engine::digest(&bytes);
            match old_plugin {
                Some(old) if old.digest == digest => (Some(old), None),
                old => match runtime.load(&bytes, grants.clone()).await {
                    Ok(plugin) => {
                        tracing::info!(
                            connector = %config.id,
                            plugin = %plugin.manifest.name,
                            version = %plugin.manifest.version,
                            digest = %plugin.digest,
                            "connector loaded"
                        );
                        (Some(Arc::new(plugin)), None)
                    }
                    Err(err) => {
                        let err = format!("{}: {err}", path.display());
                        match &old {
                            Some(old) => tracing::error!(
                                connector = %config.id,
                                serving = %old.digest,
                                "new version refused, the previous one keeps serving: {err}"
                            ),
                            None => {
                                tracing::error!(connector = %config.id, "connector not loaded: {err}")
                            }
                        }
                        (old, Some(err))
                    }
                },
            }
        }
    };
    let declared = plugin.as_ref().map(|p| p.manifest.default_scheme.clone());
    let verifier = build_verifier(config, declared.as_deref());
    if let (Err(err), Some(_)) = (&verifier, &plugin) {
        // Without a plugin the load error above is the news; the scheme follows from it.
        tracing::error!(connector = %config.id, "{err}");
    }
    Connector {
        config: config.clone(),
        grants,
        plugin,
        last_error,
        verifier,
    }
}

/// The verifier for a connector: the operator's `scheme`, else the plugin's declared one.
pub fn build_verifier(
    config: &ConnectorConfig,
    declared: Option<&str>,
) -> Result<Verifier, String> {
    let name = match (config.scheme, declared) {
        (Some(name), _) => name,
        // Unsigned webhooks only when the operator says so, never by a plugin's default.
        (None, Some("none")) => {
            return Err(format!(
                "connector `{}` declares no signature scheme; set scheme = \"none\" in its \
                 config to accept unsigned webhooks",
                config.id
            ));
        }
        (None, Some(declared)) if !declared.is_empty() => {
            declared.parse::<SchemeName>().map_err(|_| {
                format!(
                    "connector `{}`: unknown signature scheme `{declared}`",
                    config.id
                )
            })?
        }
        (None, _) => {
            return Err(format!(
                "connector `{}`: no signature scheme (set `scheme` in its config)",
                config.id
            ));
        }
    };
    let hmac = config.hmac.as_ref().map(|h| HmacParams {
        header: h.header.clone(),
        encoding: h.encoding.into(),
        prefix: h.prefix.clone(),
    });
    let scheme = name
        .scheme(hmac, config.public_url.clone())
        .map_err(|missing| {
            let id = &config.id;
            match missing {
                MissingParams::Hmac => {
                    format!("connector `{id}`: scheme hmac-sha256 needs [connector.hmac] header")
                }
                MissingParams::PublicUrl => {
                    format!("connector `{id}`: scheme mandrill needs `public_url`")
                }
            }
        })?;
    if name != SchemeName::None && config.secret.is_empty() {
        return Err(format!(
            "connector `{}`: scheme {name} needs a `secret`",
            config.id
        ));
    }
    let verifier = Verifier::new(scheme, config.secret.clone(), config.tolerance);
    verifier
        .check()
        .map_err(|err| format!("connector `{}`: {err}", config.id))?;
    Ok(verifier)
}
