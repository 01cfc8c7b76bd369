//! Command-line interface: `serve`, `check`, `sign`, `new connector`, `plugin
//! inspect|push`, `events list|show|find|replay`, `connectors list|show|pause|resume|reload`,
//! `destinations list|show|enable|disable`.

mod inspect;
mod remote;

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};

use switchyard::Config;
use switchyard::config::ConfigError;
use switchyard::config::{HmacEncoding, MissingParams, SchemeName};
use switchyard::plugin::ConnectorState;
use switchyard::scaffold::{self, Lang, SdkSource};
use switchyard::secret::Secret;
use switchyard::verify::{self, HmacParams};

#[derive(Parser)]
#[command(name = "switchyard", version, about = "Webhook connector runtime")]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the host.
    Serve {
        /// The config file.
        #[arg(long, short, default_value = "switchyard.toml")]
        config: PathBuf,
    },
    /// Validate the config and load every enabled connector; exit 1 on any problem.
    Check {
        #[arg(long, short, default_value = "switchyard.toml")]
        config: PathBuf,
    },
    /// Print the headers that sign a payload (read from FILE or stdin), to test a setup.
    Sign {
        /// stripe, standard-webhooks, github, hmac-sha256, mandrill or token: a connector's
        /// `scheme` (any but `none`).
        #[arg(long, value_parser = signing_scheme)]
        scheme: SchemeName,
        /// The signing secret, or `env:VAR` / `file:PATH`.
        #[arg(long)]
        secret: String,
        /// The payload file; `-` or nothing reads stdin.
        file: Option<PathBuf>,
        /// Message id for standard-webhooks (`webhook-id`).
        #[arg(long)]
        id: Option<String>,
        /// Unix timestamp to sign with (default: now).
        #[arg(long)]
        timestamp: Option<i64>,
        /// hmac-sha256: the header to put the signature in.
        #[arg(long, default_value = "X-Signature")]
        header: String,
        /// hmac-sha256: how the MAC is written.
        #[arg(long, value_enum, default_value_t = HmacEncoding::Hex)]
        encoding: HmacEncoding,
        /// hmac-sha256: text before the signature, e.g. `sha256=`.
        #[arg(long, default_value = "")]
        prefix: String,
        /// mandrill: the exact URL configured at Mandrill.
        #[arg(long)]
        url: Option<String>,
        /// Print curl arguments (`-H 'Name: value'`) instead of header lines.
        #[arg(long)]
        curl: bool,
    },
    /// Scaffold a new project from the SDK's template.
    New {
        #[command(subcommand)]
        what: New,
    },
    /// Look at a connector build.
    Plugin {
        #[command(subcommand)]
        what: PluginCommand,
    },
    /// The event log of a running host (its admin API).
    Events {
        #[command(flatten)]
        target: remote::Target,
        #[command(subcommand)]
        what: remote::Events,
    },
    /// The connectors of a running host (its admin API).
    Connectors {
        #[command(flatten)]
        target: remote::Target,
        #[command(subcommand)]
        what: remote::Connectors,
    },
    /// The destinations of a running host (its admin API).
    Destinations {
        #[command(flatten)]
        target: remote::Target,
        #[command(subcommand)]
        what: remote::Destinations,
    },
}

#[derive(Subcommand)]
enum PluginCommand {
    /// Load a .wasm as the host would and print its manifest, digest and size; exit 1 if
    /// the host would refuse it.
    Inspect {
        file: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Put a build into the cluster's store (storage.backend = "nats"): every host copies it
    /// into its plugins.dir and loads it within seconds. It is checked first, as `inspect`
    /// does; exit 1 if the host would refuse it.
    Push {
        file: PathBuf,
        /// The cluster to push to: this config's [storage].
        #[arg(long, default_value = "switchyard.toml", env = "SWITCHYARD_CONFIG")]
        config: PathBuf,
        /// The plugin file name in the store (default: FILE's name), as `plugin` in a
        /// `[[connector]]` names it.
        #[arg(long)]
        name: Option<String>,
    },
}

#[derive(Subcommand)]
enum New {
    /// Create a connector project NAME that builds to a wasm component and passes its own
    /// tests: a Rust crate (wasm32-wasip2), or with `--lang js` an npm package.
    Connector {
        /// The project's name, also its default route and .wasm name: lowercase letters,
        /// digits and `-` (e.g. `my-connector`).
        name: String,
        /// Create the project in DIR/NAME (DIR is created if missing; NAME must not exist).
        #[arg(long, value_name = "DIR", default_value = ".")]
        path: PathBuf,
        /// The language: `rust` (switchyard-sdk) or `js` (@switchyard/sdk, componentize-js).
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
        /// Depend on the SDK at PATH instead of the one this binary was built from (or
        /// the registry's release when that is gone): `sdk/` for Rust, `sdk-js/` for js.
        #[arg(long, value_name = "PATH")]
        sdk_path: Option<PathBuf>,
    },
}

impl Cli {
    pub fn run(self) -> anyhow::Result<ExitCode> {
        // `serve` starts its log once the config says how (`server.log_format`,
        // `[telemetry]`); other commands log as text.
        let _log = match self.command {
            Command::Serve { .. } => None,
            _ => Some(switchyard::telemetry::init(
                switchyard::config::LogFormat::Text,
                &Default::default(),
            )?),
        };
        match self.command {
            Command::Serve { config } => serve(config),
            Command::Check { config } => check(config),
            Command::Sign {
                scheme,
                secret,
                file,
                id,
                timestamp,
                header,
                encoding,
                prefix,
                url,
                curl,
            } => {
                let hmac = HmacParams {
                    header,
                    encoding: encoding.into(),
                    prefix,
                };
                // clap took only the names `signing_scheme` lets through, never `none`.
                if scheme == SchemeName::None {
                    bail!("`{scheme}` cannot sign");
                }
                let scheme = match scheme.scheme(Some(hmac), url) {
                    Ok(scheme) => scheme,
                    Err(MissingParams::PublicUrl) => bail!("--url is required for mandrill"),
                    Err(MissingParams::Hmac) => unreachable!("hmac parameters are given"),
                };
                let secret = Secret::new(
                    switchyard::config::resolve_reference("--secret", &secret)
                        .map_err(|err| anyhow::anyhow!("{err}"))?,
                );
                let body = match file {
                    Some(path) if path.as_os_str() != "-" => std::fs::read(&path)
                        .with_context(|| format!("reading {}", path.display()))?,
                    _ => {
                        let mut body = Vec::new();
                        std::io::stdin().read_to_end(&mut body)?;
                        body
                    }
                };
                let now = timestamp.unwrap_or_else(switchyard::time::now_s);
                let id = id.unwrap_or_else(|| format!("msg_{}", ulid::Ulid::new()));
                let headers = verify::sign(&scheme, &secret, &body, now, &id)
                    .map_err(|err| anyhow::anyhow!("{err}"))?;
                for (name, value) in headers {
                    if curl {
                        print!("-H '{name}: {value}' ");
                    } else {
                        println!("{name}: {value}");
                    }
                }
                if curl {
                    println!();
                }
                Ok(ExitCode::SUCCESS)
            }
            Command::New {
                what:
                    New::Connector {
                        name,
                        path,
                        lang,
                        sdk_path,
                    },
            } => new_connector(&name, lang, &path, sdk_path.as_deref()),
            Command::Plugin {
                what: PluginCommand::Inspect { file, json },
            } => inspect::inspect(&file, json),
            Command::Plugin {
                what: PluginCommand::Push { file, config, name },
            } => inspect::push(&file, &config, name.as_deref()),
            Command::Events { target, what } => remote::events(target, what),
            Command::Connectors { target, what } => remote::connectors(target, what),
            Command::Destinations { target, what } => remote::destinations(target, what),
        }
    }
}

fn new_connector(
    name: &str,
    lang: Lang,
    parent: &Path,
    sdk_path: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    scaffold::validate_name(name)?;
    let sdk = match sdk_path {
        Some(path) => SdkSource::local(lang, path)?,
        None => SdkSource::default_for_this_binary(lang),
    };
    let dir = scaffold::new_connector(name, lang, parent, &sdk)?;
    println!("Created connector `{name}` in {}", dir.display());
    match lang {
        Lang::Rust => println!("switchyard-sdk: {sdk}"),
        Lang::Js => println!("@switchyard/sdk: {sdk}"),
    }
    println!();
    println!("Next:");
    println!("  cd {}", dir.display());
    match lang {
        Lang::Rust => {
            let wasm = name.replace('-', "_");
            println!("  cargo test");
            println!("  cargo build --release --target wasm32-wasip2");
            println!(
                "  # then copy target/wasm32-wasip2/release/{wasm}.wasm into the host's plugins.dir"
            );
            println!(
                "  # (under a temporary name, then rename it) and add a [[connector]] for it."
            );
            println!("The SDK's README.md is the tutorial for every step.");
        }
        Lang::Js => {
            println!("  npm install");
            println!("  npm test");
            println!("  npm run build");
            println!("  # then copy {name}.wasm into the host's plugins.dir (under a temporary");
            println!("  # name, then rename it) and add a [[connector]] for it.");
            println!("sdk-js/README.md is the tutorial for every step.");
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn load(path: &Path) -> anyhow::Result<Config> {
    Config::load(path).map_err(|err| match err {
        // These already name the file.
        ConfigError::Read { .. } | ConfigError::Syntax { .. } => anyhow::anyhow!("{err}"),
        _ => anyhow::anyhow!("{}: {err}", path.display()),
    })
}

fn serve(path: PathBuf) -> anyhow::Result<ExitCode> {
    let config = load(&path)?;
    let _telemetry = switchyard::telemetry::init(config.server.log_format, &config.telemetry)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let listener = tokio::net::TcpListener::bind(config.server.listen)
            .await
            .with_context(|| format!("binding {}", config.server.listen))?;
        switchyard::run(config, listener, shutdown_signal()).await
    })?;
    Ok(ExitCode::SUCCESS)
}

fn check(path: PathBuf) -> anyhow::Result<ExitCode> {
    let config = load(&path)?;
    println!("{}", config.summary());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let problems = runtime.block_on(async move {
        let mut problems = 0;
        if config.storage.backend == switchyard::config::Backend::Nats {
            problems += check_nats(&config.storage).await;
        }
        // Load each connector exactly as `serve` would, against a throwaway store.
        let scratch = scratch_dir("check")?;
        let mut config = config;
        config.storage.backend = switchyard::config::Backend::Sled;
        config.storage.path = scratch.clone();
        config.storage.durable = false;
        let app = switchyard::App::start(config).await?;
        for connector in app.connectors.all() {
            match &connector.state {
                ConnectorState::Ready { plugin, .. } => {
                    println!(
                        "ok    {}: {} {} ({})",
                        connector.config.id,
                        plugin.manifest.name,
                        plugin.manifest.version,
                        plugin.digest
                    );
                }
                ConnectorState::Unverifiable { reason: err, .. }
                | ConnectorState::NotLoaded { reason: err, .. } => {
                    problems += 1;
                    println!("error {}: {err}", connector.config.id);
                }
            }
        }
        drop(app);
        let _ = std::fs::remove_dir_all(&scratch);
        anyhow::Ok(problems)
    })?;
    Ok(if problems == 0 {
        println!("config ok");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// Connect to NATS as `serve` would and say what the server is and what a 200 survives;
/// the number of problems found (0 or 1).
async fn check_nats(storage: &switchyard::config::StorageConfig) -> usize {
    use switchyard::store::nats;
    match nats::probe(storage).await {
        Ok(probe) => {
            let cluster = match &probe.cluster {
                Some(name) => format!("cluster {name}, {} other servers known", probe.peers),
                None => "no cluster".into(),
            };
            println!(
                "ok    nats: server {} (nats-server {}), {cluster}",
                probe.server_name, probe.version
            );
            if let Some(account) = &probe.jetstream {
                println!(
                    "ok    jetstream: on, {} streams, {} MiB stored",
                    account.streams,
                    account.storage >> 20
                );
            }
            let durability = nats::durability(&probe, storage.replicas);
            if storage.replicas >= 3 && probe.cluster.is_none() {
                println!("error durability: {durability}");
                1
            } else {
                println!("note  durability: {durability}");
                0
            }
        }
        Err(err) => {
            println!("error nats: {err}");
            1
        }
    }
}

/// A new, empty directory for a command's throwaway store (the caller removes it).
fn scratch_dir(command: &str) -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("switchyard-{command}-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
}

/// `--scheme`: one `switchyard sign` can sign with, every scheme a connector may name
/// ([`SchemeName::ALL`]) but `none`.
fn signing_scheme(name: &str) -> Result<SchemeName, String> {
    let known = SchemeName::ALL
        .into_iter()
        .filter(|scheme| *scheme != SchemeName::None);
    if let Some(scheme) = known.clone().find(|scheme| scheme.as_str() == name) {
        return Ok(scheme);
    }
    Err(format!(
        "unknown scheme `{name}`; known: {}",
        known.map(SchemeName::as_str).collect::<Vec<_>>().join(", ")
    ))
}
