//! The close worker: each SQS message is a close request for one subscription. Each is closed
//! on its own, as a draft; then the batch's drafts are numbered together (one conditional write
//! per issuer and up to 99 drafts) and their events published. A failure is reported in
//! `batchItemFailures` so SQS retries only that message and, after `maxReceiveCount`, moves it to
//! the dead-letter queue. Each message is isolated ([`draft_one`]): a message that is not a close
//! request, a close that fails (a corrupt stored item among them) or a close that panics fails
//! that message alone, never its batch. Retrying is safe: every period is written once, numbered once, and a
//! retry finishes a close left pending (events keep their ids). If numbering the batch fails,
//! every message that wrote a draft is retried, and the scheduler's sweep finishes them too.

pub mod seed;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use futures::FutureExt;
use meterline_shared::adapters::metrics::{Metrics, Unit};
use meterline_shared::domain::billing::Invoice;
use meterline_shared::ports::billing::CloseRequest;
use meterline_shared::services::closing::{CloseFailure, CloseReport};
use meterline_shared::services::closing::{Closer, Finalization, LoadedCatalog};
use std::panic::AssertUnwindSafe;

/// Handles one SQS batch at `now`.
pub async fn handle(closer: &Closer<'_>, event: SqsEvent, now: DateTime<Utc>) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    let (mut closed, mut already) = (0, 0);
    let mut to_finish: Vec<Finalization> = Vec::new();
    let mut finishing: Vec<String> = Vec::new();
    // The price books are read once per batch.
    let mut catalog = LoadedCatalog::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let body = record.body.as_deref().unwrap_or("");
        match draft_one(closer, body, now, &mut catalog).await {
            Ok(report) => {
                closed += report.committed.len();
                already += report.already_closed;
                if !report.to_finish.is_empty() {
                    finishing.push(id.clone());
                    to_finish.extend(report.to_finish);
                }
            }
            Err(failure) => {
                failure.log(&id);
                if matches!(failure, ItemFailure::Panicked { .. }) {
                    // The catalog may be half read: read it again for the next item.
                    catalog = LoadedCatalog::default();
                }
                let mut f = BatchItemFailure::default();
                f.item_identifier = id;
                response.batch_item_failures.push(f);
            }
        }
    }
    let mut numbered = 0;
    let mut finalized = Vec::new();
    let finished = AssertUnwindSafe(closer.finish(to_finish)).catch_unwind().await;
    match finished {
        Ok(Ok(report)) => {
            numbered = report.numbered;
            finalized = report.finalized;
        }
        outcome => {
            let error = match outcome {
                Ok(Err(e)) => e.to_string(),
                _ => "panicked".to_string(),
            };
            tracing::warn!(%error, messages = finishing.len(), "finishing the batch's closes failed; they will be retried");
            for id in finishing {
                let mut f = BatchItemFailure::default();
                f.item_identifier = id;
                response.batch_item_failures.push(f);
            }
        }
    }
    tracing::info!(
        closed,
        numbered,
        already_closed = already,
        failed = response.batch_item_failures.len(),
        "close batch handled"
    );
    for line in batch_metrics(closed, already, response.batch_item_failures.len(), &finalized) {
        line.emit();
    }
    response
}

/// Why one message of a batch failed: it alone is reported in `batchItemFailures`.
#[derive(Debug)]
pub enum ItemFailure {
    /// The body is not a close request.
    Unreadable(serde_json::Error),
    /// The close failed (storage, a missing rate, a corrupt item: see the error).
    Close {
        request: CloseRequest,
        error: CloseFailure,
    },
    /// The close panicked; the panic was caught so that the rest of the batch goes on.
    Panicked { request: CloseRequest, message: String },
}

impl ItemFailure {
    fn log(&self, message_id: &str) {
        match self {
            ItemFailure::Unreadable(e) => {
                tracing::warn!(message_id, error = %e, "close request is not readable")
            }
            ItemFailure::Close { request, error } => tracing::warn!(
                message_id,
                account_id = %request.account_id,
                subscription_id = %request.subscription_id,
                retryable = error.is_retryable(),
                error = %error,
                "close failed; it will be retried"
            ),
            ItemFailure::Panicked { request, message } => tracing::error!(
                message_id,
                account_id = %request.account_id,
                subscription_id = %request.subscription_id,
                panic = %message,
                "close panicked; this message alone fails"
            ),
        }
    }
}

/// Drafts the closes of one message, isolated from the rest of the batch: an error or a panic
/// while closing it fails this message only. (Under `panic = "abort"` a panic would end the
/// process and fail the whole batch: the release profile unwinds for this reason.)
pub async fn draft_one(
    closer: &Closer<'_>,
    body: &str,
    now: DateTime<Utc>,
    catalog: &mut LoadedCatalog,
) -> Result<CloseReport, ItemFailure> {
    let request = serde_json::from_str::<CloseRequest>(body).map_err(ItemFailure::Unreadable)?;
    match AssertUnwindSafe(closer.draft_with(&request, now, catalog))
        .catch_unwind()
        .await
    {
        Ok(Ok(report)) => Ok(report),
        Ok(Err(error)) => Err(ItemFailure::Close { request, error }),
        Err(panic) => Err(ItemFailure::Panicked {
            request,
            message: panic_message(panic.as_ref()),
        }),
    }
}

/// The text of a caught panic's payload.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic without a message".to_string())
}

/// The batch's metrics (EMF): closes done, already closed and failed, then per currency the
/// invoices finalized and the amount billed (their totals).
pub fn batch_metrics(closed: usize, already: usize, failed: usize, finalized: &[Invoice]) -> Vec<Metrics> {
    let mut lines = vec![Metrics::new("close-worker", "close batch metrics")
        .count("ClosesDone", closed)
        .count("ClosesAlreadyClosed", already)
        .count("ClosesFailed", failed)];
    let mut per_currency: std::collections::BTreeMap<&str, (usize, rust_decimal::Decimal)> =
        Default::default();
    for invoice in finalized {
        let entry = per_currency.entry(invoice.currency.code()).or_default();
        entry.0 += 1;
        entry.1 += invoice.total;
    }
    for (currency, (count, amount)) in per_currency {
        lines.push(
            Metrics::new("close-worker", "invoices finalized metrics")
                .dimension("Currency", currency)
                .count("InvoicesFinalized", count)
                .decimal("AmountBilled", Unit::None, amount),
        );
    }
    lines
}
