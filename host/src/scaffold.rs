//! `switchyard new connector NAME [--lang js]`: a connector project from an SDK's template
//! (`sdk/template/` for Rust, `sdk-js/template/` for JavaScript), compiled into the binary
//! so an installed `switchyard` scaffolds anywhere.
//!
//! The template files use `{{placeholder}}`s, filled by plain text replacement:
//! `name` (the package name, `my-hook`), `crate_name` (the lib name and so the `.wasm`'s,
//! `my_hook`), `type_name` (the connector type, `MyHook`), `env_name` (`MY_HOOK`) and
//! `sdk_dependency` (for Rust a TOML value, `{ path = "…" }` or `"0.1.0"`; for JavaScript
//! a JSON string, `"file:/…/sdk-js"` or `"0.1.1"`).

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// The language a connector is written in, and so its template and SDK.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Lang {
    /// A Rust crate built with `cargo build --target wasm32-wasip2` (`switchyard-sdk`).
    #[default]
    Rust,
    /// An ES module built with componentize-js (`@switchyard/sdk`, in `sdk-js/`).
    Js,
}

impl Lang {
    fn template(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Lang::Rust => TEMPLATE,
            Lang::Js => JS_TEMPLATE,
        }
    }

    /// The SDK of the source tree this binary was built from.
    fn built_from(self) -> &'static str {
        match self {
            Lang::Rust => BUILT_FROM_SDK,
            Lang::Js => BUILT_FROM_SDK_JS,
        }
    }

    /// The SDK package's name, as its manifest says it.
    fn sdk_package(self) -> &'static str {
        match self {
            Lang::Rust => "switchyard-sdk",
            Lang::Js => "@switchyard/sdk",
        }
    }

    /// The SDK release matching this binary, for when its source tree is gone.
    fn sdk_release(self) -> &'static str {
        match self {
            Lang::Rust => env!("CARGO_PKG_VERSION"),
            // The npm package is versioned as the WIT world it builds against.
            Lang::Js => JS_SDK_VERSION,
        }
    }
}

/// The version of `@switchyard/sdk` this binary's template is written for.
const JS_SDK_VERSION: &str = "0.1.1";

/// The Rust template, relative path in the new crate → text.
const TEMPLATE: &[(&str, &str)] = &[
    (
        "Cargo.toml",
        include_str!("../../sdk/template/Cargo.toml.tmpl"),
    ),
    (
        "src/lib.rs",
        include_str!("../../sdk/template/src/lib.rs.tmpl"),
    ),
    (
        "README.md",
        include_str!("../../sdk/template/README.md.tmpl"),
    ),
    (
        ".gitignore",
        include_str!("../../sdk/template/gitignore.tmpl"),
    ),
];

/// The JavaScript template, relative path in the new project → text.
const JS_TEMPLATE: &[(&str, &str)] = &[
    (
        "package.json",
        include_str!("../../sdk-js/template/package.json.tmpl"),
    ),
    (
        "src/index.js",
        include_str!("../../sdk-js/template/src/index.js.tmpl"),
    ),
    (
        "test/index.test.js",
        include_str!("../../sdk-js/template/test/index.test.js.tmpl"),
    ),
    (
        "README.md",
        include_str!("../../sdk-js/template/README.md.tmpl"),
    ),
    (
        ".gitignore",
        include_str!("../../sdk-js/template/gitignore.tmpl"),
    ),
    // Editors type-check the JavaScript against the SDK's declarations (`index.d.ts`).
    (
        "jsconfig.json",
        include_str!("../../sdk-js/template/jsconfig.json.tmpl"),
    ),
];

/// The SDKs of the source tree this binary was built from; used when they still exist.
const BUILT_FROM_SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk");
const BUILT_FROM_SDK_JS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../sdk-js");

/// Names the generated `src/lib.rs` has in scope (its imports and the prelude types it
/// uses): a connector type of the same name would clash, so it gets a `Connector` suffix.
const NAMES_IN_SCOPE: &[&str] = &[
    "Connector",
    "Ctx",
    "Delivery",
    "Failure",
    "Manifest",
    "Webhook",
    "Value",
    "Level",
    "TestHost",
    "Option",
    "Result",
    "String",
    "Vec",
    "Box",
    "Some",
    "None",
    "Ok",
    "Err",
];

/// Package names Cargo or Rust refuse, or that clash with the template's dependencies.
#[rustfmt::skip]
const RESERVED: &[&str] = &[
    // Rust keywords (2024 edition, reserved ones included): not usable as a lib name.
    "abstract", "as", "async", "await", "become", "box", "break", "const", "continue",
    "crate", "do", "dyn", "else", "enum", "extern", "false", "final", "fn", "for", "gen", "if",
    "impl", "in", "let", "loop", "macro", "match", "mod", "move", "mut", "override", "priv",
    "pub", "ref", "return", "self", "static", "struct", "super", "trait", "true", "try",
    "type", "typeof", "unsafe", "unsized", "use", "virtual", "where", "while", "yield",
    // The standard library's crates.
    "alloc", "core", "proc-macro", "std", "test",
    // The template's own dependencies.
    "serde", "serde-json", "switchyard-sdk",
];

/// Where the generated project gets its SDK (`switchyard-sdk`, `@switchyard/sdk`) from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SdkSource {
    /// A local checkout (absolute): `{ path = "…" }`, `"file:…"`.
    Path(PathBuf),
    /// The registry (crates.io, npm): `"<version>"`.
    Registry(String),
}

impl SdkSource {
    /// The SDK for `lang` of the source tree this binary was built from, when it is still
    /// there; otherwise the registry release matching this binary.
    pub fn default_for_this_binary(lang: Lang) -> SdkSource {
        match SdkSource::local(lang, Path::new(lang.built_from())) {
            Ok(source) => source,
            Err(_) => SdkSource::Registry(lang.sdk_release().to_owned()),
        }
    }

    /// A local SDK checkout at `path`: it must hold the SDK package for `lang` (a
    /// `Cargo.toml` of `switchyard-sdk`, a `package.json` of `@switchyard/sdk`).
    pub fn local(lang: Lang, path: &Path) -> Result<SdkSource, ScaffoldError> {
        let not_sdk = |reason: String| ScaffoldError::NotAnSdk {
            path: path.to_path_buf(),
            reason,
        };
        let dir = path
            .canonicalize()
            .map_err(|e| not_sdk(format!("cannot open it: {e}")))?;
        let file = match lang {
            Lang::Rust => "Cargo.toml",
            Lang::Js => "package.json",
        };
        let manifest = std::fs::read_to_string(dir.join(file))
            .map_err(|e| not_sdk(format!("cannot read its {file}: {e}")))?;
        let name = match lang {
            Lang::Rust => manifest
                .parse::<toml::Table>()
                .map_err(|e| not_sdk(format!("its {file} does not parse: {e}")))?
                .get("package")
                .and_then(|p| p.get("name"))
                .and_then(|name| name.as_str().map(str::to_owned)),
            Lang::Js => serde_json::from_str::<serde_json::Value>(&manifest)
                .map_err(|e| not_sdk(format!("its {file} does not parse: {e}")))?
                .get("name")
                .and_then(|name| name.as_str().map(str::to_owned)),
        };
        if name.as_deref() != Some(lang.sdk_package()) {
            return Err(not_sdk(format!(
                "its {file} is not the `{}` package",
                lang.sdk_package()
            )));
        }
        if dir.to_str().is_none() {
            return Err(not_sdk("the path is not valid UTF-8".to_owned()));
        }
        Ok(SdkSource::Path(dir))
    }

    /// The dependency as the template's manifest writes it: a TOML value for
    /// `switchyard-sdk = …`, a JSON string for `"@switchyard/sdk": …`.
    fn dependency(&self, lang: Lang) -> String {
        match (lang, self) {
            (Lang::Rust, SdkSource::Path(dir)) => {
                let path = toml::Value::String(dir.to_string_lossy().into_owned());
                format!("{{ path = {path} }}")
            }
            (Lang::Rust, SdkSource::Registry(version)) => {
                toml::Value::String(version.clone()).to_string()
            }
            (Lang::Js, SdkSource::Path(dir)) => {
                serde_json::Value::String(format!("file:{}", dir.to_string_lossy())).to_string()
            }
            (Lang::Js, SdkSource::Registry(version)) => {
                serde_json::Value::String(version.clone()).to_string()
            }
        }
    }
}

impl fmt::Display for SdkSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SdkSource::Path(dir) => write!(f, "{}", dir.display()),
            SdkSource::Registry(version) => write!(f, "crates.io, version {version}"),
        }
    }
}

/// Why a connector crate was not created.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("invalid connector name `{name}`: {reason}")]
    InvalidName { name: String, reason: String },
    #[error("{} already exists; pick another name or --path (nothing was overwritten)", .0.display())]
    Exists(PathBuf),
    #[error("--sdk-path {}: {reason}", path.display())]
    NotAnSdk { path: PathBuf, reason: String },
    #[error("writing {}: {source}", path.display())]
    Io { path: PathBuf, source: io::Error },
}

/// Checks that `name` works as a package name, a lib name and a route: `[a-z][a-z0-9-]*`,
/// at most 64 characters, no trailing or doubled `-`, not a Rust keyword or a crate the
/// template depends on.
pub fn validate_name(name: &str) -> Result<(), ScaffoldError> {
    let invalid = |reason: &str| ScaffoldError::InvalidName {
        name: name.to_owned(),
        reason: reason.to_owned(),
    };
    let Some(first) = name.chars().next() else {
        return Err(invalid("it is empty"));
    };
    if !first.is_ascii_lowercase() {
        return Err(invalid("it must start with a lowercase letter (a-z)"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(invalid(
            "use only lowercase letters, digits and `-` (e.g. `my-connector`)",
        ));
    }
    if name.ends_with('-') || name.contains("--") {
        return Err(invalid("`-` must separate words"));
    }
    if name.len() > 64 {
        return Err(invalid("it is longer than 64 characters"));
    }
    if RESERVED.contains(&name) {
        return Err(invalid(
            "it is a Rust keyword, a standard crate or one of the template's dependencies",
        ));
    }
    Ok(())
}

/// The connector type's name: `my-hook` → `MyHook` (`MyHookConnector` when that clashes
/// with a name the template uses).
fn type_name(name: &str) -> String {
    let camel: String = name
        .split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect();
    if NAMES_IN_SCOPE.contains(&camel.as_str()) {
        camel + "Connector"
    } else {
        camel
    }
}

/// The `lang` template's files for `name`, rendered: (relative path, text).
pub fn render(
    name: &str,
    lang: Lang,
    sdk: &SdkSource,
) -> Result<Vec<(&'static str, String)>, ScaffoldError> {
    validate_name(name)?;
    let values = [
        ("{{name}}", name.to_owned()),
        ("{{crate_name}}", name.replace('-', "_")),
        ("{{type_name}}", type_name(name)),
        ("{{env_name}}", name.replace('-', "_").to_ascii_uppercase()),
        ("{{sdk_dependency}}", sdk.dependency(lang)),
    ];
    Ok(lang
        .template()
        .iter()
        .map(|(path, text)| {
            let text = values
                .iter()
                .fold((*text).to_owned(), |text, (key, value)| {
                    text.replace(key, value)
                });
            (*path, text)
        })
        .collect())
}

/// Creates the project `name` in `parent` (created if missing) and returns its folder. An
/// existing `parent/name` is never touched; on a write error the new folder is removed.
pub fn new_connector(
    name: &str,
    lang: Lang,
    parent: &Path,
    sdk: &SdkSource,
) -> Result<PathBuf, ScaffoldError> {
    let files = render(name, lang, sdk)?;
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| ScaffoldError::Io { path, source }
    };
    std::fs::create_dir_all(parent).map_err(io_error(parent))?;
    let dir = parent.join(name);
    // `create_dir` fails on anything already there, so two runs cannot both claim it.
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(ScaffoldError::Exists(dir));
        }
        Err(e) => return Err(io_error(&dir)(e)),
    }
    let written = files.iter().try_for_each(|(relative, text)| {
        let path = dir.join(relative);
        if let Some(folder) = path.parent() {
            std::fs::create_dir_all(folder).map_err(io_error(folder))?;
        }
        std::fs::write(&path, text).map_err(io_error(&path))
    });
    if let Err(err) = written {
        let _ = std::fs::remove_dir_all(&dir);
        return Err(err);
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> SdkSource {
        SdkSource::Registry("0.1.0".into())
    }

    #[test]
    fn names() {
        for good in ["hello", "tutorial-hello", "a1", "x-2-y", &"a".repeat(64)] {
            validate_name(good).unwrap_or_else(|e| panic!("{good}: {e}"));
        }
        for bad in [
            "",
            "Hello",
            "1abc",
            "-a",
            "a-",
            "a--b",
            "a_b",
            "a.b",
            "a/b",
            "../x",
            "héllo",
            "fn",
            "self",
            "test",
            "std",
            "serde",
            "switchyard-sdk",
            &"a".repeat(65),
        ] {
            assert!(
                matches!(validate_name(bad), Err(ScaffoldError::InvalidName { .. })),
                "{bad:?} accepted"
            );
        }
    }

    #[test]
    fn type_names() {
        assert_eq!(type_name("hello"), "Hello");
        assert_eq!(type_name("tutorial-hello"), "TutorialHello");
        assert_eq!(type_name("a1-b2"), "A1B2");
        assert_eq!(type_name("webhook"), "WebhookConnector");
        assert_eq!(type_name("result"), "ResultConnector");
        assert_eq!(type_name("connector"), "ConnectorConnector");
    }

    #[test]
    fn names_in_scope_cover_the_templates_imports() {
        let lib = TEMPLATE.iter().find(|(p, _)| *p == "src/lib.rs").unwrap().1;
        for line in lib.lines().map(str::trim).filter(|l| l.starts_with("use ")) {
            let names = line
                .trim_end_matches(';')
                .rsplit("::")
                .next()
                .unwrap()
                .trim_matches(['{', '}']);
            for name in names.split(',').map(str::trim).filter(|n| !n.is_empty()) {
                let first = name.chars().next().unwrap();
                if first.is_ascii_uppercase() {
                    assert!(NAMES_IN_SCOPE.contains(&name), "{name} missing");
                }
            }
        }
    }

    #[test]
    fn renders_every_placeholder() {
        let sdk = SdkSource::Path(PathBuf::from("/opt/sdk \"quoted\""));
        let files = render("my-hook", Lang::Rust, &sdk).unwrap();
        let paths: Vec<_> = files.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            paths,
            ["Cargo.toml", "src/lib.rs", "README.md", ".gitignore"]
        );
        for (path, text) in &files {
            assert!(
                !text.contains("{{"),
                "{path} has a placeholder left:\n{text}"
            );
        }
        let cargo: toml::Table = files[0].1.parse().unwrap();
        assert_eq!(cargo["package"]["name"].as_str(), Some("my-hook"));
        assert_eq!(
            cargo["dependencies"]["switchyard-sdk"]["path"].as_str(),
            Some("/opt/sdk \"quoted\"")
        );
        assert!(cargo["workspace"].is_table());
        assert_eq!(
            cargo["lib"]["crate-type"],
            toml::Value::Array(vec!["cdylib".into(), "rlib".into()])
        );
        assert!(files[1].1.contains("pub struct MyHook;"));
        assert!(files[1].1.contains("export!(MyHook)"));
        assert!(files[2].1.contains("my_hook.wasm"));
        assert!(files[2].1.contains("env:MY_HOOK_SECRET"));

        let files = render("my-hook", Lang::Rust, &registry()).unwrap();
        let cargo: toml::Table = files[0].1.parse().unwrap();
        assert_eq!(
            cargo["dependencies"]["switchyard-sdk"].as_str(),
            Some("0.1.0")
        );
    }

    #[test]
    fn creates_the_crate_and_never_overwrites() {
        let tmp = tempfile::tempdir().unwrap();
        let parent = tmp.path().join("new/parent");
        let dir = new_connector("hello", Lang::Rust, &parent, &registry()).unwrap();
        assert_eq!(dir, parent.join("hello"));
        assert!(dir.join("src/lib.rs").is_file());
        assert!(dir.join(".gitignore").is_file());

        std::fs::write(dir.join("src/lib.rs"), "mine").unwrap();
        let err = new_connector("hello", Lang::Rust, &parent, &registry()).unwrap_err();
        assert!(matches!(err, ScaffoldError::Exists(_)), "{err}");
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(
            std::fs::read_to_string(dir.join("src/lib.rs")).unwrap(),
            "mine"
        );

        let err = new_connector("Bad", Lang::Rust, &parent, &registry()).unwrap_err();
        assert!(matches!(err, ScaffoldError::InvalidName { .. }), "{err}");
        assert!(!parent.join("Bad").exists());
    }

    #[test]
    fn local_sdk_must_be_the_sdk() {
        let sdk = SdkSource::local(Lang::Rust, Path::new(BUILT_FROM_SDK)).unwrap();
        let SdkSource::Path(dir) = &sdk else {
            panic!("{sdk:?}")
        };
        assert!(dir.is_absolute());
        assert_eq!(SdkSource::default_for_this_binary(Lang::Rust), sdk);

        let tmp = tempfile::tempdir().unwrap();
        let err = SdkSource::local(Lang::Rust, tmp.path()).unwrap_err();
        assert!(err.to_string().contains("Cargo.toml"), "{err}");
        std::fs::write(
            tmp.path().join("Cargo.toml"),
            "[package]\nname = \"other\"\n",
        )
        .unwrap();
        let err = SdkSource::local(Lang::Rust, tmp.path()).unwrap_err();
        assert!(err.to_string().contains("switchyard-sdk"), "{err}");
        assert!(SdkSource::local(Lang::Rust, &tmp.path().join("missing")).is_err());
    }

    #[test]
    fn renders_the_js_template() {
        let sdk = SdkSource::Path(PathBuf::from("/opt/sdk-js \"quoted\""));
        let files = render("my-hook", Lang::Js, &sdk).unwrap();
        let paths: Vec<_> = files.iter().map(|(p, _)| *p).collect();
        assert_eq!(
            paths,
            [
                "package.json",
                "src/index.js",
                "test/index.test.js",
                "README.md",
                ".gitignore",
                "jsconfig.json"
            ]
        );
        for (path, text) in &files {
            assert!(
                !text.contains("{{"),
                "{path} has a placeholder left:\n{text}"
            );
        }
        let package: serde_json::Value = serde_json::from_str(&files[0].1).unwrap();
        assert_eq!(package["name"], "my-hook");
        assert_eq!(
            package["dependencies"]["@switchyard/sdk"],
            "file:/opt/sdk-js \"quoted\""
        );
        assert!(package["scripts"]["test"].is_string(), "{package:#}");
        assert!(package["scripts"]["build"].is_string(), "{package:#}");
        assert!(files[3].1.contains("my-hook.wasm"), "{}", files[3].1);

        let files = render("my-hook", Lang::Js, &SdkSource::Registry("0.1.1".into())).unwrap();
        let package: serde_json::Value = serde_json::from_str(&files[0].1).unwrap();
        assert_eq!(package["dependencies"]["@switchyard/sdk"], "0.1.1");
    }

    #[test]
    fn local_js_sdk_must_be_the_js_sdk() {
        let sdk = SdkSource::local(Lang::Js, Path::new(BUILT_FROM_SDK_JS)).unwrap();
        assert_eq!(SdkSource::default_for_this_binary(Lang::Js), sdk);
        // The Rust SDK is not the JavaScript one, nor the other way round.
        let err = SdkSource::local(Lang::Js, Path::new(BUILT_FROM_SDK)).unwrap_err();
        assert!(err.to_string().contains("package.json"), "{err}");
        let err = SdkSource::local(Lang::Rust, Path::new(BUILT_FROM_SDK_JS)).unwrap_err();
        assert!(err.to_string().contains("Cargo.toml"), "{err}");

        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("package.json"), r#"{"name": "other"}"#).unwrap();
        let err = SdkSource::local(Lang::Js, tmp.path()).unwrap_err();
        assert!(err.to_string().contains("@switchyard/sdk"), "{err}");
    }
}
