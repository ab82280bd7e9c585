//! The usage-ingestion function: SQS messages of usage events in, events and aggregates stored
//! exactly once.
//!
//! Each message is ingested on its own. A malformed event is stored as a rejected event and
//! does not fail its message. A message that cannot be processed at all (not JSON, too many
//! events, storage down) is reported in `batchItemFailures`, so SQS retries only it and, after
//! `maxReceiveCount`, moves it to the dead-letter queue. Retrying is safe: ingestion is
//! idempotent.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use meterline_shared::adapters::metrics::Metrics;
use meterline_shared::ports::usage::UsageStore;
use meterline_shared::ports::StoreError;
use meterline_shared::services::ingest::{ingest_body, IngestCounts, IngestError, IngestSettings};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

/// What the handler needs: a store and the ingestion settings.
pub struct Ingestor {
    pub store: Arc<dyn UsageStore>,
    pub settings: IngestSettings,
}

impl Ingestor {
    /// Ingests one SQS batch, `now` being the receive time used for the lateness rules.
    pub async fn handle(&self, event: SqsEvent, now: DateTime<Utc>) -> SqsBatchResponse {
        let mut counts = IngestCounts::default();
        let mut response = SqsBatchResponse::default();
        let messages = event.records.len();
        for record in event.records {
            let id = record.message_id.clone().unwrap_or_default();
            let body = record.body.as_deref().unwrap_or("");
            // A panic while ingesting one message fails that message only (the release profile
            // unwinds for this reason; with abort it would fail the whole batch).
            let ingested = AssertUnwindSafe(ingest_body(self.store.as_ref(), body, &self.settings, now))
                .catch_unwind()
                .await;
            let failure = match ingested {
                Ok(Ok(c)) => {
                    counts += c;
                    None
                }
                Ok(Err(err)) => {
                    let kind = match &err {
                        IngestError::Body(_) => "unreadable_body",
                        IngestError::Store(StoreError::Corrupt(_)) => "corrupt",
                        IngestError::Store(_) => "storage",
                    };
                    Some((kind, err.to_string()))
                }
                Err(_) => Some(("panic", "ingesting the message panicked".to_string())),
            };
            if let Some((kind, error)) = failure {
                tracing::warn!(message_id = %id, kind, %error, "message failed; it will be retried");
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = id;
                response.batch_item_failures.push(failure);
            }
        }
        tracing::info!(
            messages,
            accepted = counts.accepted,
            duplicate = counts.duplicate,
            rejected = counts.rejected,
            failed = response.batch_item_failures.len(),
            "usage batch ingested"
        );
        batch_metrics(&counts, response.batch_item_failures.len(), now).emit();
        response
    }
}

/// The batch's metrics (EMF): events accepted, duplicate and rejected, messages failed, and the
/// largest ingest lag (receive time minus the usage time of the oldest event accepted).
pub fn batch_metrics(counts: &IngestCounts, failed: usize, now: DateTime<Utc>) -> Metrics {
    let metrics = Metrics::new("usage-ingest", "usage batch metrics")
        .count("EventsAccepted", counts.accepted)
        .count("EventsDuplicate", counts.duplicate)
        .count("EventsRejected", counts.rejected)
        .count("MessagesFailed", failed);
    match counts.oldest_accepted {
        Some(oldest) => metrics.seconds("IngestLagMax", (now - oldest).num_seconds()),
        None => metrics,
    }
}
