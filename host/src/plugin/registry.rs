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
use crate::config::{ConnectorConfig, HmacConfig, RetryConfig};
use crate::store::Storage;
use crate::verify::{Encoding, Scheme, Verifier};

/// One connector as configured and loaded.
pub struct Connector {
    pub config: ConnectorConfig,
    pub grants: Arc<Grants>,
    /// The loaded code, or why it could not be loaded (shown as `last_error`; its route
    /// answers 503 so a sender retries instead of losing events).
    pub plugin: Result<Arc<Plugin>, String>,
    /// `None` when the plugin failed to load and the config names no scheme.
    pub verifier: Result<Verifier, String>,
    /// When this version was loaded, unix ms.
    pub loaded_at: u64,
}

impl Connector {
    pub fn retry(&self) -> &RetryConfig {
        &self.config.retry
    }

    /// The first reason this connector cannot take events, if any.
    pub fn unavailable(&self) -> Option<&str> {
        match (&self.plugin, &self.verifier) {
            (Err(err), _) | (_, Err(err)) => Some(err),
            _ => None,
        }
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

    pub fn replace(&self, connectors: HashMap<String, Arc<Connector>>) {
        self.connectors.store(Arc::new(connectors));
    }
}

/// Load one connector from `plugins_dir`. Never fails: a missing or broken `.wasm` gives a
/// connector whose `plugin` holds the error, so the other connectors keep serving.
pub async fn load_connector(
    runtime: &Runtime,
    plugins_dir: &Path,
    config: &ConnectorConfig,
    storage: Arc<dyn Storage>,
    http: reqwest::Client,
) -> Connector {
    let grants = Arc::new(Grants {
        connector: config.id.clone(),
        settings: config.settings.clone(),
        allowed_hosts: AllowedHosts::new(&config.allowed_hosts),
        storage,
        http,
        fetch_timeout: config.retry.timeout,
    });
    let path = plugins_dir.join(&config.plugin);
    let plugin = match tokio::fs::read(&path).await {
        Ok(bytes) => runtime
            .load(&bytes, grants.clone())
            .await
            .map(Arc::new)
            .map_err(|err| format!("{}: {err}", path.display())),
        Err(err) => Err(format!("cannot read {}: {err}", path.display())),
    };
    if let Err(err) = &plugin {
        tracing::error!(connector = %config.id, "connector not loaded: {err}");
    } else if let Ok(p) = &plugin {
        tracing::info!(
            connector = %config.id,
            plugin = %p.manifest.name,
            version = %p.manifest.version,
            digest = %p.digest,
            "connector loaded"
        );
    }
    let declared = plugin
        .as_ref()
        .ok()
        .map(|p| p.manifest.default_scheme.clone());
    let verifier = build_verifier(config, declared.as_deref());
    if let Err(err) = &verifier {
        tracing::error!(connector = %config.id, "{err}");
    }
    Connector {
        config: config.clone(),
        grants,
        plugin,
        verifier,
        loaded_at: crate::time::now_ms(),
    }
}

/// The verifier for a connector: the operator's `scheme`, else the plugin's declared one.
pub fn build_verifier(
    config: &ConnectorConfig,
    declared: Option<&str>,
) -> Result<Verifier, String> {
    let name = match (config.scheme.as_deref(), declared) {
        (Some(name), _) => name,
        // Unsigned webhooks only when the operator says so, never by a plugin's default.
        (None, Some("none")) => {
            return Err(format!(
                "connector `{}` declares no signature scheme; set scheme = \"none\" in its \
                 config to accept unsigned webhooks",
                config.id
            ));
        }
        (None, Some(name)) if !name.is_empty() => name,
        (None, _) => {
            return Err(format!(
                "connector `{}`: no signature scheme (set `scheme` in its config)",
                config.id
            ));
        }
    };
    let scheme = match name {
        "stripe" => Scheme::Stripe,
        "standard-webhooks" => Scheme::StandardWebhooks,
        "github" => Scheme::Github,
        "hmac-sha256" => {
            let Some(HmacConfig {
                header,
                encoding,
                prefix,
            }) = &config.hmac
            else {
                return Err(format!(
                    "connector `{}`: scheme hmac-sha256 needs [connector.hmac] header",
                    config.id
                ));
            };
            Scheme::HmacSha256 {
                header: header.clone(),
                encoding: match encoding.as_str() {
                    "base64" => Encoding::Base64,
                    _ => Encoding::Hex,
                },
                prefix: prefix.clone(),
            }
        }
        "mandrill" => match &config.public_url {
            Some(url) => Scheme::Mandrill {
                public_url: url.clone(),
            },
            None => {
                return Err(format!(
                    "connector `{}`: scheme mandrill needs `public_url`",
                    config.id
                ));
            }
        },
        "token" => Scheme::Token,
        "none" => Scheme::None,
        other => {
            return Err(format!(
                "connector `{}`: unknown signature scheme `{other}`",
                config.id
            ));
        }
    };
    if !matches!(scheme, Scheme::None) && config.secret.is_empty() {
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
