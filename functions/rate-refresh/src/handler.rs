//! The scheduled invocation: an EventBridge rule fires, one refresh runs.

use crate::config::Config;
use crate::refresh::{refresh_once, RefreshReport};
use crate::source::RateSource;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::Utc;
use meterline_shared::adapters::metrics::Metrics;
use meterline_shared::domain::fx::Outcome;
use meterline_shared::ports::rates::RateStore;
use serde::Serialize;
use std::sync::Arc;

/// Built once per cold start and shared by the invocations.
pub struct App {
    pub config: Config,
    pub sources: Vec<Arc<dyn RateSource>>,
    pub store: Arc<dyn RateStore>,
}

/// The function's answer: counts, for the invocation log. Details go to the structured log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    pub fresh: usize,
    pub kept_stale: usize,
    pub no_rate: usize,
    pub rejected_quotes: usize,
    pub source_failures: usize,
}

impl Summary {
    pub fn of(report: &RefreshReport) -> Summary {
        Summary {
            fresh: report.count(Outcome::Fresh),
            kept_stale: report.count(Outcome::KeptStale),
            no_rate: report.count(Outcome::NoRate),
            rejected_quotes: report.pairs.iter().map(|p| p.rejected.len()).sum(),
            source_failures: report.pairs.iter().map(|p| p.failures.len()).sum(),
        }
    }
}

/// Runs one refresh at the current time. The schedule's `detail` is ignored.
pub async fn handle(app: &App, event: EventBridgeEvent<serde_json::Value>) -> anyhow::Result<Summary> {
    let now = Utc::now();
    tracing::info!(event_time = ?event.time, source = %event.source, "rate refresh");
    let report = refresh_once(&app.sources, app.store.as_ref(), &app.config, now).await?;
    for p in &report.pairs {
        let detail = serde_json::to_string(p).unwrap_or_default();
        match p.outcome {
            Outcome::Fresh if p.rejected.is_empty() && p.failures.is_empty() => {
                tracing::info!(pair = %p.pair, %detail, "rate stored")
            }
            Outcome::Fresh => tracing::warn!(pair = %p.pair, %detail, "rate stored; some quotes not used"),
            Outcome::KeptStale => {
                tracing::warn!(pair = %p.pair, %detail, "no quorum: last good rate kept, stale")
            }
            Outcome::NoRate => tracing::error!(pair = %p.pair, %detail, "no quorum and no previous rate"),
        }
    }
    for line in refresh_metrics(&report) {
        line.emit();
    }
    Ok(Summary::of(&report))
}

/// The refresh's metrics (EMF): per pair whether it is fresh, kept stale or missing and the age
/// of its latest rate; then the counts over every pair and the largest age, which the stale-rate
/// alarm watches.
pub fn refresh_metrics(report: &RefreshReport) -> Vec<Metrics> {
    let mut lines = Vec::new();
    let mut oldest: i64 = 0;
    for p in &report.pairs {
        let mut line = Metrics::new("rate-refresh", "rate pair metrics")
            .dimension("Pair", p.pair.to_string())
            .count("RateFresh", usize::from(p.outcome == Outcome::Fresh))
            .count("RateStale", usize::from(p.outcome == Outcome::KeptStale))
            .count("RateMissing", usize::from(p.outcome == Outcome::NoRate));
        if let Some(rate) = &p.rate {
            let age = (report.at - rate.as_of).num_seconds().max(0);
            oldest = oldest.max(age);
            line = line.seconds("RateAge", age);
        }
        lines.push(line);
    }
    lines.push(
        Metrics::new("rate-refresh", "rate refresh metrics")
            .count("PairsFresh", report.count(Outcome::Fresh))
            .count("PairsStale", report.count(Outcome::KeptStale))
            .count("PairsMissing", report.count(Outcome::NoRate))
            .seconds("RateAgeMax", oldest),
    );
    lines
}
