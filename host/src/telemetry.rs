//! The process's log and traces: tracing's output on stderr (text or JSON,
//! `server.log_format`), and, when `[telemetry] otlp_endpoint` is set, its spans exported
//! as OpenTelemetry traces over OTLP/HTTP.
//!
//! One trace per webhook: the `webhook` span (its parent is the sender's `traceparent`
//! when there is one) with `verify` and `store` inside it; the connector attempts
//! (`connector_call`) and delivery tries (`delivery`) run later, from the queue, so the
//! event keeps its span's `traceparent` ([`crate::store::EventRecord::trace`]) and they
//! join the trace from there; a delivery sends its own span as `traceparent`.
//!
//! The spans are at `debug` level: with traces off and the log at `info`, no span is
//! enabled and nothing is recorded (an enabled span per request costs more than the HMAC
//! check), and [`traceparent`] returns at once.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::propagation::TextMapPropagator as _;
use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::Layer as _;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::config::{LogFormat, TelemetryConfig};

/// Whether spans are exported (so there is a trace context to pass on).
static TRACING: AtomicBool = AtomicBool::new(false);

/// Keeps the exporter; dropping it sends the spans not sent yet.
#[must_use = "dropping it stops the export"]
pub struct Guard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take()
            && let Err(err) = provider.shutdown()
        {
            eprintln!("sending the last spans: {err}");
        }
    }
}

/// Start the log (filtered by `RUST_LOG`, `info` by default) and, if configured, the
/// export of traces. Once per process.
pub fn init(format: LogFormat, telemetry: &TelemetryConfig) -> anyhow::Result<Guard> {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| "info,cranelift=warn,wasmtime=warn".into());
    let log = match format {
        LogFormat::Text => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .boxed(),
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(false)
            .with_writer(std::io::stderr)
            .boxed(),
    }
    .with_filter(filter);
    let provider = match &telemetry.otlp_endpoint {
        None => None,
        Some(endpoint) => {
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpJson)
                .with_endpoint(endpoint)
                .build()?;
            let resource = opentelemetry_sdk::Resource::builder()
                .with_service_name(telemetry.service_name.clone())
                .build();
            Some(
                SdkTracerProvider::builder()
                    .with_batch_exporter(exporter)
                    .with_resource(resource)
                    .build(),
            )
        }
    };
    // Only the host's own spans become trace spans (not its log lines, not other crates').
    let traces = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer()
            .with_tracer(provider.tracer("switchyard"))
            .with_filter(tracing_subscriber::filter::filter_fn(|meta| {
                meta.is_span() && meta.target().starts_with("switchyard")
            }))
    });
    tracing_subscriber::registry().with(log).with(traces).init();
    if let Some(endpoint) = &telemetry.otlp_endpoint {
        TRACING.store(true, Ordering::Relaxed);
        tracing::info!(%endpoint, "exporting traces over OTLP");
    }
    Ok(Guard { provider })
}

/// The current span's W3C `traceparent`, when traces are exported.
pub fn traceparent() -> Option<String> {
    if !TRACING.load(Ordering::Relaxed) {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&tracing::Span::current().context(), &mut carrier);
    carrier.remove("traceparent")
}

/// Make `span` a child of `traceparent` (a sender's, or the one kept with an event). A
/// value that does not parse is ignored; so is anything when traces are off.
pub fn set_parent(span: &tracing::Span, traceparent: Option<&str>) {
    let Some(traceparent) = traceparent.filter(|_| TRACING.load(Ordering::Relaxed)) else {
        return;
    };
    let carrier = HashMap::from([("traceparent".to_string(), traceparent.to_string())]);
    let _ = span.set_parent(TraceContextPropagator::new().extract(&carrier));
}
