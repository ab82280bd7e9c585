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
use meterline_shared::ports::usage::UsageStore;
use meterline_shared::services::ingest::{ingest_body, IngestCounts, IngestError, IngestSettings};
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
            match ingest_body(self.store.as_ref(), body, &self.settings, now).await {
                Ok(c) => counts += c,
                Err(err) => {
                    let kind = match &err {
                        IngestError::Body(_) => "unreadable_body",
                        IngestError::Store(_) => "storage",
                    };
                    tracing::warn!(message_id = %id, kind, error = %err, "message failed; it will be retried");
                    let mut failure = BatchItemFailure::default();
                    failure.item_identifier = id;
                    response.batch_item_failures.push(failure);
                }
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
        response
    }
}
