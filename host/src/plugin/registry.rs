//! The live set of connectors: each one's config, grants, pause and state (its loaded
//! plugin and verifier, or why it has none).
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
#[derive(Clone)]
pub struct Connector {
    /// The `[[connector]]` as the config file gives it (an API pause is in `paused`).
    pub config: ConnectorConfig,
    /// Whether its events wait instead of being dispatched: the file's `paused`, or the
    /// operator's pause or resume from the API while that holds (`App::set_paused`).
    pub paused: bool,
    pub grants: Arc<Grants>,
    /// What it can do: take events, or why not.
    pub state: ConnectorState,
}

/// What a connector can be once loaded.
#[derive(Clone)]
pub enum ConnectorState {
    /// A version serves and requests can be verified.
    Ready {
        plugin: Arc<Plugin>,
        /// Built from the config and the plugin's declared scheme.
        verifier: Verifier,
        /// Why the newest version was refused while this one keeps serving.
        refused: Option<String>,
    },
    /// A version is loaded but no verifier can be built (the config and the plugin's
    /// declared scheme do not give one): its route answers 503; events accepted before
    /// still go to the plugin.
    Unverifiable {
        plugin: Arc<Plugin>,
        reason: String,
        /// Why the newest version was refused while this one stays loaded.
        refused: Option<String>,
    },
    /// No version could ever be loaded: its route answers 503 so a sender retries instead
    /// of losing events, and its events wait.
    NotLoaded {
        /// Why the newest load failed.
        reason: String,
        /// The config's own scheme, when a verifier builds from the config alone (the
        /// admin API shows it).
        scheme: Option<SchemeName>,
    },
}

impl Connector {
    pub fn retry(&self) -> &RetryConfig {
        &self.config.retry
    }

    /// Why this connector cannot take events right now, if it cannot.
    pub fn unavailable(&self) -> Option<&str> {
        self.state.unavailable()
    }

    /// This connector paused (`true`) or resumed, the rest as it is.
    pub fn with_paused(&self, paused: bool) -> Connector {
        Connector {
            paused,
            ..self.clone()
        }
    }

    /// Whether this is `previous` again: the same loaded plugin, the same config (the
    /// file's `paused` aside) and the same effective pause. A reload reports it unchanged.
    /// This version kept serving while a newer one was refused for `why`.
    fn refusing(&self, why: String, paused: bool) -> Connector {
        let state = match &self.state {
            ConnectorState::Ready {
                plugin, verifier, ..
            } => ConnectorState::Ready {
                plugin: plugin.clone(),
                verifier: verifier.clone(),
                refused: Some(why),
            },
            ConnectorState::Unverifiable { plugin, reason, .. } => ConnectorState::Unverifiable {
                plugin: plugin.clone(),
                reason: reason.clone(),
                refused: Some(why),
            },
            not_loaded => not_loaded.clone(),
        };
        Connector {
            config: self.config.clone(),
            paused,
            grants: self.grants.clone(),
            state,
        }
    }

    pub fn same_as(&self, previous: &Connector) -> bool {
        let same_plugin = match (self.state.plugin(), previous.state.plugin()) {
            (Some(new), Some(old)) => Arc::ptr_eq(old, new),
            _ => false,
        };
        same_plugin
            && self.paused == previous.paused
            && self.config
                == ConnectorConfig {
                    paused: self.config.paused,
                    ..previous.config.clone()
                }
    }
}

impl ConnectorState {
    /// The loaded version, if any (it may be serving or only finishing accepted events).
    pub fn plugin(&self) -> Option<&Arc<Plugin>> {
        match self {
            ConnectorState::Ready { plugin, .. } | ConnectorState::Unverifiable { plugin, .. } => {
                Some(plugin)
            }
            ConnectorState::NotLoaded { .. } => None,
        }
    }

    /// Why the connector cannot take events right now, if it cannot.
    pub fn unavailable(&self) -> Option<&str> {
        match self {
            ConnectorState::Ready { .. } => None,
            ConnectorState::Unverifiable { reason, .. }
            | ConnectorState::NotLoaded { reason, .. } => Some(reason),
        }
    }

    /// Why the newest version did not load, if it did not (an older one may serve).
    pub fn load_error(&self) -> Option<&str> {
        match self {
            ConnectorState::Ready { refused, .. }
            | ConnectorState::Unverifiable { refused, .. } => refused.as_deref(),
            ConnectorState::NotLoaded { reason, .. } => Some(reason),
        }
    }

    /// The name of the signature scheme in force, when there is one.
    pub fn scheme(&self) -> Option<&'static str> {
        match self {
            ConnectorState::Ready { verifier, .. } => Some(verifier.scheme.name()),
            ConnectorState::Unverifiable { .. } => None,
            ConnectorState::NotLoaded { scheme, .. } => scheme.map(SchemeName::as_str),
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
    paused: bool,
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
    let old_plugin = previous.and_then(|p| p.state.plugin().cloned());
    let path = plugins_dir.join(&config.plugin);
    // `Ok`: the version to run and why newer bytes were refused; `Err`: why none loads.
    let loaded: Result<(Arc<Plugin>, Option<String>), String> = match tokio::fs::read(&path).await {
        Err(err) => {
            // A removed file unloads the connector: 503 until it is back.
            Err(format!("cannot read {}: {err}", path.display()))
        }
        Ok(bytes) => {
            let digest = super::engine::digest(&bytes);
            match old_plugin {
                Some(old) if old.digest == digest => Ok((old, None)),
                old => match runtime.load(&bytes, grants.clone()).await {
                    Ok(plugin) => {
                        tracing::info!(
                            connector = %config.id,
                            plugin = %plugin.manifest.name,
                            version = %plugin.manifest.version,
                            digest = %plugin.digest,
                            "connector loaded"
                        );
                        Ok((Arc::new(plugin), None))
                    }
                    Err(err) => {
                        let err = format!("{}: {err}", path.display());
                        match old {
                            Some(old) => {
                                tracing::error!(
                                    connector = %config.id,
                                    serving = %old.digest,
                                    "new version refused, the previous one keeps serving: {err}"
                                );
                                Ok((old, Some(err)))
                            }
                            None => {
                                tracing::error!(connector = %config.id, "connector not loaded: {err}");
                                Err(err)
                            }
                        }
                    }
                },
            }
        }
    };
    // The connector's settings, checked by the plugin that will run them (WIT 0.1.1's
    // `check-settings`): refused, the previous version (plugin and config) keeps serving;
    // with none to keep, the connector is not served.
    let loaded = match loaded {
        Ok((plugin, refused)) => match runtime.check_settings(&plugin, grants.clone()).await {
            Ok(()) => Ok((plugin, refused)),
            Err(err) => {
                let err = format!("connector `{}`: {err}", config.id);
                match previous.filter(|p| p.state.plugin().is_some()) {
                    Some(previous) => {
                        tracing::error!(
                            connector = %config.id,
                            "new config refused, the previous one keeps serving: {err}"
                        );
                        return previous.refusing(err, paused);
                    }
                    None => {
                        tracing::error!(connector = %config.id, "connector not loaded: {err}");
                        Err(err)
                    }
                }
            }
        },
        Err(err) => Err(err),
    };
    let state = match loaded {
        Ok((plugin, refused)) => {
            match build_verifier(config, Some(&plugin.manifest.default_scheme)) {
                Ok(verifier) => ConnectorState::Ready {
                    plugin,
                    verifier,
                    refused,
                },
                Err(reason) => {
                    tracing::error!(connector = %config.id, "{reason}");
                    ConnectorState::Unverifiable {
                        plugin,
                        reason,
                        refused,
                    }
                }
            }
        }
        // The load error is the news; the scheme follows from it.
        Err(reason) => ConnectorState::NotLoaded {
            reason,
            scheme: config
                .scheme
                .filter(|_| build_verifier(config, None).is_ok()),
        },
    };
    Connector {
        config: config.clone(),
        paused,
        grants,
        state,
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
