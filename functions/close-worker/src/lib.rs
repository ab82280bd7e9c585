//! The close worker: each SQS message is a close request for one subscription. Each is closed
//! on its own, as a draft; then the batch's drafts are numbered together (one conditional write
//! per issuer and up to 99 drafts) and their events published. A failure is reported in
//! `batchItemFailures` so SQS retries only that message and, after `maxReceiveCount`, moves it to
//! the dead-letter queue. Retrying is safe: every period is written once, numbered once, and a
//! retry finishes a close left pending (events keep their ids). If numbering the batch fails,
//! every message that wrote a draft is retried, and the scheduler's sweep finishes them too.

pub mod seed;

use aws_lambda_events::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use chrono::{DateTime, Utc};
use meterline_shared::ports::billing::CloseRequest;
use meterline_shared::services::closing::{Closer, Finalization, LoadedCatalog};

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
        let failed = match serde_json::from_str::<CloseRequest>(body) {
            Err(e) => {
                tracing::warn!(message_id = %id, error = %e, "close request is not readable");
                true
            }
            Ok(request) => match closer.draft_with(&request, now, &mut catalog).await {
                Ok(report) => {
                    closed += report.committed.len();
                    already += report.already_closed;
                    if !report.to_finish.is_empty() {
                        finishing.push(id.clone());
                        to_finish.extend(report.to_finish);
                    }
                    false
                }
                Err(e) => {
                    tracing::warn!(
                        message_id = %id,
                        account_id = %request.account_id,
                        subscription_id = %request.subscription_id,
                        retryable = e.is_retryable(),
                        error = %e,
                        "close failed; it will be retried"
                    );
                    true
                }
            },
        };
        if failed {
            let mut f = BatchItemFailure::default();
            f.item_identifier = id;
            response.batch_item_failures.push(f);
        }
    }
    let mut numbered = 0;
    match closer.finish(to_finish).await {
        Ok(report) => numbered = report.numbered,
        Err(e) => {
            tracing::warn!(error = %e, messages = finishing.len(), "finishing the batch's closes failed; they will be retried");
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
    response
}
