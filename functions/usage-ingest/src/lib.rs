//! The usage-ingestion function: SQS messages of usage events in, events and aggregates stored
//! exactly once.
//!
//! Each message is decoded on its own, and the valid events of the whole batch are committed
//! together (fewer aggregate writes). A malformed event is stored as a rejected event and does
//! not fail its message. A message that cannot be decoded (not JSON, too many events) fails
//! alone; when storage fails, every message that brought events fails. Once the batch is
//! committed, its usage is drawn down from the accounts' prepaid credit
//! ([`Ingestor::handle_and_draw`]), and crossings of their spend limits are announced. Failed messages are
//! reported in `batchItemFailures`, so SQS retries only them and, after `maxReceiveCount`, moves
//! them to the dead-letter queue. Retrying is safe: ingestion is idempotent.

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use meterline_shared::adapters::metrics::Metrics;
use meterline_shared::ports::billing::{BillingStore, EventPublisher};
use meterline_shared::ports::credits::CreditStore;
use meterline_shared::ports::spend::SpendStore;
use meterline_shared::ports::usage::UsageStore;
use meterline_shared::ports::StoreError;
use meterline_shared::services::credits::Pause;
use meterline_shared::services::drawdown::{PeriodDraw, SpendControl, UsageDrawDown};
use meterline_shared::services::ingest::{
    ingest_batch, BatchOutcome, IngestCounts, IngestError, IngestSettings,
};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::AssertUnwindSafe;
use std::sync::Arc;

/// The usage times of a batch's events, per account.
type UsageTimes = BTreeMap<String, BTreeSet<DateTime<Utc>>>;

/// What the draw-down after each batch needs besides the usage store: the credit ledgers, and
/// the accounts, subscriptions and catalog that rate the usage.
pub struct CreditDraw {
    pub credits: Arc<dyn CreditStore>,
    pub billing: Arc<dyn BillingStore>,
    /// The pause before another attempt of a ledger save that lost a race.
    pub pause: Pause,
    /// Spend limits and the claims of spend events.
    pub spend: Arc<dyn SpendStore>,
    /// Where `SpendThresholdReached` and `SpendLimitReached` go.
    pub publisher: Arc<dyn EventPublisher>,
}

/// What the handler needs: a store and the ingestion settings.
pub struct Ingestor {
    pub store: Arc<dyn UsageStore>,
    pub settings: IngestSettings,
}

impl Ingestor {
    /// Ingests one SQS batch, `now` being the receive time used for the lateness rules. The
    /// messages' events are committed together (`ingest_batch`), so an aggregate shared by
    /// several messages is written once per transaction, not once per message.
    pub async fn handle(&self, event: SqsEvent, now: DateTime<Utc>) -> SqsBatchResponse {
        self.ingest(event, now).await.0
    }

    /// As [`Ingestor::handle`], then draws the batch's usage down from the prepaid credit of
    /// its accounts (`services::drawdown`). The usage is committed first: a draw-down that
    /// fails (or panics) fails no message; the account's next batch draws what it missed.
    /// Returns the response and what each period drew.
    pub async fn handle_and_draw(
        &self,
        event: SqsEvent,
        now: DateTime<Utc>,
        draw: &CreditDraw,
    ) -> (SqsBatchResponse, Vec<PeriodDraw>) {
        let (response, usage) = self.ingest(event, now).await;
        let service = UsageDrawDown {
            credits: draw.credits.as_ref(),
            billing: draw.billing.as_ref(),
            usage: self.store.as_ref(),
            pause: draw.pause,
            control: Some(SpendControl {
                store: draw.spend.as_ref(),
                publisher: draw.publisher.as_ref(),
            }),
        };
        let draws = match AssertUnwindSafe(service.draw_batch(&usage, now))
            .catch_unwind()
            .await
        {
            Ok((draws, _failed)) => draws,
            Err(_) => {
                tracing::error!("the draw-down panicked; the accounts' next batches catch up");
                Vec::new()
            }
        };
        (response, draws)
    }

    /// Ingests the batch: the response, and the usage times per account of a committed batch.
    async fn ingest(&self, event: SqsEvent, now: DateTime<Utc>) -> (SqsBatchResponse, UsageTimes) {
        let mut response = SqsBatchResponse::default();
        let messages = event.records.len();
        let bodies: Vec<&str> = event
            .records
            .iter()
            .map(|r| r.body.as_deref().unwrap_or(""))
            .collect();
        // A panic while decoding one message fails that message only (`ingest_batch` catches
        // it; the release profile unwinds for this reason); one while committing fails them all.
        let outcome = AssertUnwindSafe(ingest_batch(self.store.as_ref(), &bodies, &self.settings, now))
            .catch_unwind()
            .await
            .unwrap_or_else(|_| BatchOutcome {
                counts: IngestCounts::default(),
                failed: (0..messages).map(|i| (i, IngestError::Panicked)).collect(),
                usage: Default::default(),
            });
        for (i, err) in &outcome.failed {
            let id = event.records[*i].message_id.clone().unwrap_or_default();
            let kind = match err {
                IngestError::Body(_) => "unreadable_body",
                IngestError::Store(StoreError::Corrupt(_)) => "corrupt",
                IngestError::Store(_) => "storage",
                IngestError::Panicked => "panic",
            };
            tracing::warn!(message_id = %id, kind, error = %err, "message failed; it will be retried");
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
        let counts = outcome.counts;
        tracing::info!(
            messages,
            accepted = counts.accepted,
            duplicate = counts.duplicate,
            rejected = counts.rejected,
            failed = response.batch_item_failures.len(),
            "usage batch ingested"
        );
        batch_metrics(&counts, response.batch_item_failures.len(), now).emit();
        (response, outcome.usage)
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
