//! The overdue check: run by an EventBridge schedule (hourly, so each timezone's midnight is
//! seen soon after it passes). Running it any number of times charges each late fee once per
//! fee period; see `meterline_shared::services::collections`.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use meterline_shared::adapters::metrics::{Metrics, Unit};
use meterline_shared::ports::billing::{BillingStore, EventPublisher};
use meterline_shared::services::collections::{run_overdue_check, CollectionError, OverdueSummary};

/// Checks at the earlier of the event's scheduled time and `now`.
pub async fn handle(
    store: &dyn BillingStore,
    publisher: &dyn EventPublisher,
    event: &EventBridgeEvent<serde_json::Value>,
    now: DateTime<Utc>,
) -> Result<OverdueSummary, CollectionError> {
    let at = event.time.map_or(now, |t| t.min(now));
    let summary = run_overdue_check(store, publisher, at).await?;
    for line in run_metrics(&summary) {
        line.emit();
    }
    Ok(summary)
}

/// The run's metrics (EMF): invoices checked and marked past due, late fees charged, and per
/// currency the amount of late fees charged.
pub fn run_metrics(summary: &OverdueSummary) -> Vec<Metrics> {
    let mut lines = vec![Metrics::new("overdue-check", "overdue check metrics")
        .count("InvoicesChecked", summary.checked)
        .count("InvoicesMarkedPastDue", summary.marked_past_due)
        .count("LateFeesCharged", summary.fees_charged)];
    for (currency, amount) in &summary.late_fees {
        lines.push(
            Metrics::new("overdue-check", "late fee metrics")
                .dimension("Currency", *currency)
                .decimal("LateFeeAmount", Unit::None, *amount),
        );
    }
    lines
}
