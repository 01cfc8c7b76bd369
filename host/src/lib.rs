//! Switchyard: a webhook connector runtime.
//!
//! # Layout
//! The modules follow the data path of one webhook:
//!
//! - [`ingress`]: `POST /hooks/{connector}`, body limit, the answers a sender sees;
//! - [`verify`]: signature schemes (Stripe, Standard Webhooks, GitHub, HMAC, Mandrill, token),
//!   from `switchyard-core` with the records and the on-disk codecs (parsers of untrusted
//!   bytes, built and fuzzed without the rest of the host);
//! - [`store`]: the durable inbox, event log and outbox, with group commit;
//! - [`dispatch`]: the worker pool that calls a connector's `handle`;
//! - [`deliver`]: outbound requests with retries, backoff and idempotency keys.
//!
//! Shared infrastructure: [`plugin`] (the wasmtime engine, the WIT bindings per version,
//! the host imports and the connector registry), [`config`], [`admin`] (the `/v1` API),
//! [`metrics`] (`GET /metrics`, and [`activity`], the last day by the minute),
//! [`console`] (the web console at `/console/`, assets built into the binary), [`server`] (the listener: request-head limits, timeouts,
//! the connection cap),
//! [`outbound`] (allow-listed HTTP), [`watch`] (hot-loading on file changes), [`tasks`]
//! (background work that stops at shutdown) and [`app`] (start-up, the operator's
//! commands, and the composition of the stages: each stage is handed only the handles it
//! uses, [`dispatch::Dispatcher`] and [`deliver::Deliverer`]).

pub mod activity;
pub mod admin;
pub mod app;
pub mod broker;
pub mod config;
pub mod console;
pub mod deliver;
pub mod destination;
pub mod dispatch;
pub mod error;
pub mod ingress;
pub mod metrics;
pub mod outbound;
pub mod plugin;
pub mod scaffold;
pub mod server;
pub mod store;
pub mod tasks;
pub mod telemetry;
pub mod time;
pub mod watch;

pub use switchyard_core::{secret, verify};

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

pub use app::App;
pub use config::Config;

/// Every route of the host, over shared state (`switchyard_tests::Api` drives it without a socket).
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .merge(ingress::routes(app.ingress()))
        .merge(admin::routes(app.clone()))
        .merge(console::routes())
        .route("/metrics", axum::routing::get(scrape))
        // Unknown routes and methods answer in the API's error shape too.
        .fallback(error::no_route)
        .method_not_allowed_fallback(error::wrong_method)
        .layer(TraceLayer::new_for_http())
        .with_state(app)
}

/// `GET /metrics`: the Prometheus text, gauges read now.
async fn scrape(
    axum::extract::State(app): axum::extract::State<Arc<App>>,
) -> impl axum::response::IntoResponse {
    let text = app.metrics.render(metrics::Gauges {
        storage: app.storage.as_ref(),
        connectors: &app.connectors,
        destinations: &app.destinations,
        reloads: app.reloads.load(std::sync::atomic::Ordering::Relaxed),
    });
    (
        [(axum::http::header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        text,
    )
}

/// Run a host on `listener` until `shutdown` resolves: start the engine and connectors,
/// resume pending work, serve, then stop background work within
/// `server.shutdown_timeout`. Everything acknowledged is on disk, so what is cut short
/// resumes at the next start.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let grace = config.server.shutdown_timeout;
    let app = App::start(config).await?;
    dispatch::start(app.dispatcher.clone());
    deliver::start(app.dispatcher.deliverer.clone());
    watch::start(&app)?;
    watch::follow_cluster(&app);
    app.spawn(app.clone().follow_cluster());
    #[cfg(unix)]
    watch::reload_on_sighup(&app)?;
    app.spawn({
        let app = app.clone();
        async move { app.metrics.upkeep().await }
    });
    app.spawn(store::retention::run(
        app.storage.clone(),
        Duration::from_secs(u64::from(app.config.storage.retention_days) * 86_400),
        app.config.storage.dedupe_window,
    ));
    match (
        &app.config.server.admin_token,
        &app.config.server.admin_read_token,
    ) {
        (Some(_), _) => {}
        (None, Some(_)) => tracing::warn!(
            "the admin API is read-only: server.admin_read_token is set, server.admin_token is not"
        ),
        (None, None) => tracing::warn!(
            "the admin API is off (every /v1 route but /v1/health answers 401): set \
             server.admin_token to use it"
        ),
    }
    tracing::info!(addr = %listener.local_addr()?, "switchyard listening");
    // The peer's address reaches each request: the admin API's rate limit counts per client.
    server::serve(listener, router(app.clone()), &app.config.server, shutdown).await?;
    tracing::info!("shutting down");
    app.shutdown.cancel();
    app.tasks.close();
    if tokio::time::timeout(grace, app.tasks.wait()).await.is_err() {
        tracing::warn!("background work did not stop within {grace:?}");
    }
    Ok(())
}
