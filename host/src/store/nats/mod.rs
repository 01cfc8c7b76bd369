//! The NATS JetStream backend (`storage.backend = "nats"`): the connection, and what the
//! operator is told about it.
//!
//! **What a 200 promises on NATS.** The answer waits for JetStream's acknowledgement
//! (a `PubAck`) of the stored event. With `storage.replicas = 3` on a 3-node cluster the
//! acknowledgement comes after a quorum (2 of 3) has the write: it survives losing any one
//! node, machine included. With one replica on one server it survives a crash of the host
//! and of the NATS process, but a power cut of the NATS machine only if that server syncs
//! every write to disk (`sync_interval: always` in its `jetstream {}` block, nats-server
//! 2.10 or newer); by default it syncs every two minutes. [`durability`] says which one a
//! setup gives, in `switchyard check` and in the start-up log.

mod engine;
pub mod plugins;

use std::time::Duration;

use async_nats::{ConnectErrorKind, ConnectOptions, ServerAddr};

pub use engine::{NatsOptions, NatsStore, ORPHAN_CLAIM};

use crate::config::{NatsAuth, StorageConfig};

/// How long `switchyard check` (and a start) waits for a server to answer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The server config we recommend for one server (README, and `switchyard check`).
pub const RECOMMENDED_SINGLE_SERVER: &str =
    "jetstream { store_dir: /var/lib/nats, sync_interval: always }";

/// Connecting to NATS failed; the text says what to do about it.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct NatsError(pub String);

/// Connect to the servers of `config` with its credentials; fails (rather than waiting)
/// when none answers within [`CONNECT_TIMEOUT`].
pub async fn connect(config: &StorageConfig, name: &str) -> Result<async_nats::Client, NatsError> {
    let servers = config
        .nats_urls
        .iter()
        .map(|url| {
            url.parse::<ServerAddr>()
                .map_err(|err| NatsError(format!("storage.nats_url `{url}`: {err}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let mut options = ConnectOptions::new()
        .name(name)
        .connection_timeout(CONNECT_TIMEOUT)
        .request_timeout(Some(CONNECT_TIMEOUT));
    options = match &config.nats_auth {
        NatsAuth::None => options,
        NatsAuth::Token(token) => options.token(token.expose().to_owned()),
        NatsAuth::UserPassword { user, password } => {
            options.user_and_password(user.clone(), password.expose().to_owned())
        }
        NatsAuth::Creds(creds) => options
            .credentials(creds.expose())
            .map_err(|err| NatsError(format!("storage.nats_creds: not a creds file: {err}")))?,
    };
    let listed = config.nats_urls.join(", ");
    options.connect(servers).await.map_err(|err| {
        NatsError(match err.kind() {
            ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => format!(
                "NATS at {listed} refused the credentials ({}): check storage.nats_token, \
                 nats_user/nats_password or nats_creds",
                config.nats_auth.kind()
            ),
            ConnectErrorKind::TimedOut | ConnectErrorKind::Io | ConnectErrorKind::Dns => {
                format!("NATS is unreachable at {listed}: {err}")
            }
            _ => format!("connecting to NATS at {listed}: {err}"),
        })
    })
}

/// What a connected server says of itself and of JetStream.
#[derive(Debug, Clone)]
pub struct Probe {
    pub server_name: String,
    pub version: String,
    /// The cluster's name, when the server is part of one.
    pub cluster: Option<String>,
    /// Other servers the client was told of (the rest of the cluster).
    pub peers: usize,
    /// JetStream's account figures, when it is on.
    pub jetstream: Option<async_nats::jetstream::account::Account>,
}

/// Connect and ask the server about itself and JetStream. `Err` when it is unreachable,
/// refuses us, or has JetStream off.
pub async fn probe(config: &StorageConfig) -> Result<Probe, NatsError> {
    let client = connect(config, "switchyard check").await?;
    let info = client.server_info();
    let mut probe = Probe {
        server_name: info.server_name.clone(),
        version: info.version.clone(),
        cluster: info.cluster.clone(),
        peers: info.connect_urls.len().saturating_sub(1),
        jetstream: None,
    };
    if !info.jetstream {
        return Err(NatsError(format!(
            "JetStream is off on NATS server {} ({}): start it with `-js`, or a `jetstream {{}}` \
             block in its config",
            probe.server_name, probe.version
        )));
    }
    let account = async_nats::jetstream::new(client)
        .query_account()
        .await
        .map_err(|err| {
            NatsError(format!(
                "NATS server {} answered, but JetStream did not: {err}",
                probe.server_name
            ))
        })?;
    probe.jetstream = Some(account);
    Ok(probe)
}

/// Whether `version` (`2.10.4`, `2.9.10-beta`) is at least `major.minor`.
fn at_least(version: &str, major: u64, minor: u64) -> bool {
    let mut parts = version
        .trim_start_matches('v')
        .split(['.', '-'])
        .map(|p| p.parse::<u64>().unwrap_or(0));
    let (ma, mi) = (parts.next().unwrap_or(0), parts.next().unwrap_or(0));
    (ma, mi) >= (major, minor)
}

/// What a 200 survives with this setup (see the module docs).
pub fn durability(probe: &Probe, replicas: usize) -> String {
    if replicas >= 3 {
        if probe.cluster.is_none() {
            return format!(
                "storage.replicas = {replicas}, but {} is not part of a cluster: the streams \
                 cannot be created with {replicas} replicas",
                probe.server_name
            );
        }
        return format!(
            "a 200 waits for a quorum write ({} of {replicas} replicas): it survives losing \
             any one NATS node",
            replicas / 2 + 1
        );
    }
    let sync = if at_least(&probe.version, 2, 10) {
        format!(
            "of the NATS machine only if the server syncs every write (`{RECOMMENDED_SINGLE_SERVER}`)"
        )
    } else {
        format!(
            "of the NATS machine never: nats-server {} cannot sync every write \
             (`sync_interval` needs 2.10 or newer)",
            probe.version
        )
    };
    format!(
        "a 200 waits for one server's acknowledgement: it survives a crash of the host and of \
         the NATS process, and a power cut {sync}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(version: &str, cluster: Option<&str>) -> Probe {
        Probe {
            server_name: "n1".into(),
            version: version.into(),
            cluster: cluster.map(Into::into),
            peers: 0,
            jetstream: None,
        }
    }

    #[test]
    fn versions_compare_by_major_and_minor() {
        assert!(at_least("2.10.0", 2, 10));
        assert!(at_least("2.15.1", 2, 10));
        assert!(at_least("3.0.0-beta", 2, 10));
        assert!(!at_least("2.9.10", 2, 10));
        assert!(!at_least("garbage", 2, 10));
    }

    #[test]
    fn the_durability_said_follows_replicas_and_version() {
        let r3 = durability(&probe("2.15.1", Some("c")), 3);
        assert!(r3.contains("quorum write (2 of 3"), "{r3}");
        let no_cluster = durability(&probe("2.15.1", None), 3);
        assert!(no_cluster.contains("not part of a cluster"), "{no_cluster}");
        let r1 = durability(&probe("2.15.1", None), 1);
        assert!(r1.contains("sync_interval: always"), "{r1}");
        let old = durability(&probe("2.9.10", None), 1);
        assert!(old.contains("cannot sync every write"), "{old}");
    }
}
