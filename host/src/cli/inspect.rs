//! `switchyard plugin inspect F.wasm`: what a connector build is, checked the way the host
//! loads it (compiled, its world checked, `manifest()` called in the sandbox), before it
//! goes into a plugins folder.

use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use serde_json::json;

use switchyard::plugin::{AllowedHosts, Grants, Limits, Runtime};
use switchyard::store::sled::SledStore;

pub fn inspect(path: &Path, as_json: bool) -> anyhow::Result<ExitCode> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let scratch = super::scratch_dir("inspect")?;
    let result = load(&bytes, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    let plugin =
        result.with_context(|| format!("{} is not a loadable connector", path.display()))?;
    let manifest = &plugin.manifest;
    if as_json {
        let settings: Vec<_> = manifest
            .settings
            .iter()
            .map(|s| json!({"name": s.name, "description": s.description, "required": s.required}))
            .collect();
        let out = json!({
            "file": path.display().to_string(),
            "name": manifest.name,
            "version": manifest.version,
            "description": manifest.description,
            "default_scheme": manifest.default_scheme,
            "settings": settings,
            "digest": plugin.digest,
            "size": plugin.size,
            "wit": plugin.wit_version(),
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{}", path.display());
    println!("  name         {}", manifest.name);
    println!("  version      {}", manifest.version);
    println!("  description  {}", manifest.description);
    println!("  scheme       {}", manifest.default_scheme);
    println!("  digest       {}", plugin.digest);
    println!("  size         {} bytes", plugin.size);
    println!(
        "  wit          switchyard:connector@{}{}",
        plugin.wit_version(),
        if plugin.wit_version() == "0.1.0" {
            " (no check-settings: settings are checked by its first event)"
        } else {
            ""
        }
    );
    if manifest.settings.is_empty() {
        println!("  settings     (none)");
    } else {
        println!("  settings");
        for setting in &manifest.settings {
            let required = if setting.required {
                "required"
            } else {
                "optional"
            };
            println!(
                "    {:<20} {required:<8}  {}",
                setting.name, setting.description
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `switchyard plugin push F.wasm`: check the build as `inspect` does, then put it into the
/// cluster's store of the config's NATS deployment.
pub fn push(path: &Path, config: &Path, name: Option<&str>) -> anyhow::Result<ExitCode> {
    let config = switchyard::Config::load(config)
        .with_context(|| format!("loading {}", config.display()))?;
    if config.storage.backend != switchyard::config::Backend::Nats {
        anyhow::bail!(
            "plugin push needs storage.backend = \"nats\" (with sled, copy the build into \
             plugins.dir, or POST it to /v1/plugins/NAME)"
        );
    }
    let name = match name {
        Some(name) => name.to_string(),
        None => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let scratch = super::scratch_dir("push")?;
    let result = load(&bytes, &scratch);
    let _ = std::fs::remove_dir_all(&scratch);
    let plugin = result
        .with_context(|| format!("{} is not a loadable connector; not pushed", path.display()))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let store = switchyard::store::nats::plugins::Plugins::open(&config.storage).await?;
        store.push(&name, &bytes).await?;
        anyhow::Ok(())
    })?;
    println!(
        "pushed {name} ({} {}, {}) to {}; every host loads it within seconds",
        plugin.manifest.name,
        plugin.manifest.version,
        plugin.digest,
        config.storage.nats_urls.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// Load `bytes` as the host would, with no settings, no hosts and a throwaway store.
fn load(bytes: &[u8], scratch: &Path) -> anyhow::Result<switchyard::plugin::Plugin> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let engine = Runtime::new(Limits::default(), None)?;
        let grants = Arc::new(Grants {
            connector: "inspect".into(),
            settings: Default::default(),
            secrets: Vec::new(),
            allowed_hosts: AllowedHosts::default(),
            kv: switchyard::store::Kv::new(Arc::new(SledStore::open(scratch, false)?), "inspect"),
            http: reqwest::Client::new(),
            fetch_timeout: std::time::Duration::from_secs(5),
        });
        Ok(engine.load(bytes, grants).await?)
    })
}
