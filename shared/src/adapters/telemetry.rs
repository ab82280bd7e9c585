//! Structured JSON logs for the functions, filtered by `RUST_LOG` (default `info`), with the
//! business metrics of [`super::metrics`] as CloudWatch EMF lines among them.

use super::metrics::EMF_TARGET;
use std::fmt;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::{self, FormatEvent, FormatFields, JsonFields, Writer};
use tracing_subscriber::fmt::{FmtContext, MakeWriter};
use tracing_subscriber::registry::LookupSpan;

/// Installs the JSON log subscriber, writing to standard output, and sets the metrics namespace
/// from `METRICS_NAMESPACE`. Call once at start-up.
pub fn init() {
    if let Ok(ns) = std::env::var("METRICS_NAMESPACE") {
        if !ns.is_empty() {
            super::metrics::set_namespace(&ns);
        }
    }
    let filter = std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into());
    tracing::subscriber::set_global_default(subscriber(std::io::stdout, &filter)).ok();
}

/// The functions' subscriber, writing to `writer`: JSON lines, and EMF lines as they are. Tests
/// install it with a buffer to read what a handler logs. `filter` is a `RUST_LOG` directive
/// (`info` when it does not parse).
pub fn subscriber<W>(writer: W, filter: &str) -> impl Subscriber + Send + Sync
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let json = format::format()
        .json()
        .with_current_span(false)
        .with_target(false)
        .without_time();
    tracing_subscriber::fmt()
        .fmt_fields(JsonFields::new())
        .event_format(Lines(json))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(filter)
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(writer)
        .finish()
}

/// Writes a metric event's prepared line as it is; every other event with the JSON format.
struct Lines<F>(F);

impl<S, N, F> FormatEvent<S, N> for Lines<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        if event.metadata().target() == EMF_TARGET {
            let mut line = EmfField(None);
            event.record(&mut line);
            if let Some(line) = line.0 {
                return writeln!(writer, "{line}");
            }
        }
        self.0.format_event(ctx, writer, event)
    }
}

struct EmfField(Option<String>);

impl Visit for EmfField {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "emf" {
            self.0 = Some(value.to_string());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `emf = %line` arrives here, formatted by the line's Display: its text.
        if field.name() == "emf" {
            self.0 = Some(format!("{value:?}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::metrics::Metrics;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buf(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buf {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn metric_lines_are_written_whole_and_other_events_as_json() {
        let buf = Buf::default();
        let w = buf.clone();
        let sub = subscriber(move || w.clone(), "info");
        tracing::subscriber::with_default(sub, || {
            tracing::info!(accepted = 3, "usage batch ingested");
            Metrics::new("usage-ingest", "usage batch metrics")
                .count("EventsAccepted", 3)
                .emit();
        });
        let text = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<serde_json::Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert_eq!(lines[0]["fields"]["message"], "usage batch ingested");
        // The EMF line is the top-level object CloudWatch needs, not a field of a log line.
        assert_eq!(lines[1]["EventsAccepted"], 3);
        assert_eq!(
            lines[1]["_aws"]["CloudWatchMetrics"][0]["Metrics"][0]["Name"],
            "EventsAccepted"
        );
    }
}
