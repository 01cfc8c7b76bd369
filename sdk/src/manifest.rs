//! What a connector is.

/// What a connector is: returned by [`Connector::manifest`](crate::Connector::manifest)
/// and shown by `switchyard plugin inspect`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    /// Short name, e.g. `stripe`.
    pub name: String,
    /// The connector's version, usually `env!("CARGO_PKG_VERSION")`.
    pub version: String,
    /// One line on what it does.
    pub description: String,
    /// The signature scheme used when the operator does not set one: `stripe`,
    /// `standard-webhooks`, `github`, `hmac-sha256`, `mandrill`, `token` or `none`.
    pub default_scheme: String,
    /// The settings it reads from the operator's `[connector.settings]`.
    pub settings: Vec<SettingInfo>,
}

/// A setting a connector reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingInfo {
    /// The key in `[connector.settings]`.
    pub name: String,
    /// What it is for, and its format and default.
    pub description: String,
    /// Whether `handle` rejects events without it.
    pub required: bool,
}

impl Manifest {
    /// A manifest with an empty description, no settings and the default scheme `none`
    /// (set a real one with [`default_scheme`](Manifest::default_scheme)).
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Manifest {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            default_scheme: "none".to_owned(),
            settings: Vec::new(),
        }
    }

    /// Sets the description.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Sets the signature scheme used when the operator does not set one.
    pub fn default_scheme(mut self, scheme: impl Into<String>) -> Self {
        self.default_scheme = scheme.into();
        self
    }

    /// Declares a setting the connector needs.
    pub fn required_setting(self, name: impl Into<String>, description: impl Into<String>) -> Self {
        self.with_setting(name, description, true)
    }

    /// Declares a setting the connector can do without.
    pub fn optional_setting(self, name: impl Into<String>, description: impl Into<String>) -> Self {
        self.with_setting(name, description, false)
    }

    fn with_setting(
        mut self,
        name: impl Into<String>,
        description: impl Into<String>,
        required: bool,
    ) -> Self {
        self.settings.push(SettingInfo {
            name: name.into(),
            description: description.into(),
            required,
        });
        self
    }
}
