//! The overdue check: run by an EventBridge schedule (hourly, so each timezone's midnight is
//! seen soon after it passes). Running it any number of times charges each late fee once per
//! fee period; see `meterline_shared::services::collections`.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
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
    run_overdue_check(store, publisher, at).await
}
