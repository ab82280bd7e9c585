//! The cycle-close function: run by an EventBridge schedule, it queries the due index (never
//! scans) for subscriptions whose period has ended and sends one close request per subscription
//! to the close queue. Firing twice is harmless: the close worker writes each period once.
//!
//! Each run also sweeps the pending markers older than [`SWEEP_AFTER`]: closes a crashed or
//! timed-out worker wrote but did not number or publish are finished here (numbered in the order
//! they were written, events published with their fixed ids).

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::TimeDelta;
use chrono::{DateTime, Utc};
use meterline_shared::adapters::metrics::Metrics;
use meterline_shared::ports::billing::CloseQueue;
use meterline_shared::ports::billing::{BillingStore, EventPublisher};
use meterline_shared::services::closing::{enqueue_due, sweep_pending, CloseFailure, Finisher};
use serde::Serialize;

/// What one run did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// The instant periods had to have ended by.
    pub until: DateTime<Utc>,
    pub enqueued: usize,
    /// Closes left pending by a worker and finished by this run.
    pub swept: usize,
}

/// How old a pending marker must be before the sweep finishes it: longer than the close
/// worker's timeout (120 s), so the sweep does not race live workers (racing would be harmless,
/// only wasted work).
pub const SWEEP_AFTER: TimeDelta = TimeDelta::minutes(5);

/// Queues the closes due at the earlier of the event's scheduled time and `now` (a schedule
/// event never closes a period that has not ended).
pub async fn handle(
    store: &dyn BillingStore,
    queue: &dyn CloseQueue,
    publisher: &dyn EventPublisher,
    event: &EventBridgeEvent<serde_json::Value>,
    now: DateTime<Utc>,
) -> Result<Summary, CloseFailure> {
    let until = event.time.map_or(now, |t| t.min(now));
    let enqueued = enqueue_due(store, queue, until).await?;
    tracing::info!(%until, enqueued, "due billing periods queued for closing");
    let finisher = Finisher {
        billing: store,
        publisher,
    };
    let swept = sweep_pending(&finisher, now - SWEEP_AFTER).await?;
    if swept > 0 {
        tracing::warn!(swept, "closes left pending by a worker were finished");
    }
    Metrics::new("cycle-close", "cycle close metrics")
        .count("ClosesQueued", enqueued)
        .count("ClosesSwept", swept)
        .emit();
    Ok(Summary {
        until,
        enqueued,
        swept,
    })
}
