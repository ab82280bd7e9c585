//! The cycle-close function: run by an EventBridge schedule, it queries the due index (never
//! scans) for subscriptions whose period has ended and sends one close request per subscription
//! to the close queue. Firing twice is harmless: the close worker writes each period once.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use meterline_shared::closing::{enqueue_due, CloseQueue};
use meterline_shared::store::billing::BillingStore;
use meterline_shared::store::StoreError;
use serde::Serialize;

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The instant periods had to have ended by.
    pub until: DateTime<Utc>,
    pub enqueued: usize,
}

/// Queues the closes due at the earlier of the event's scheduled time and `now` (a schedule
/// event never closes a period that has not ended).
pub async fn handle<B: BillingStore, Q: CloseQueue>(
    store: &B,
    queue: &Q,
    event: &EventBridgeEvent<serde_json::Value>,
    now: DateTime<Utc>,
) -> Result<Summary, StoreError> {
    let until = event.time.map_or(now, |t| t.min(now));
    let enqueued = enqueue_due(store, queue, until).await?;
    tracing::info!(%until, enqueued, "due billing periods queued for closing");
    Ok(Summary { until, enqueued })
}
