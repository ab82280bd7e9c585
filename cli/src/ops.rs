//! `meterline ops`: the runbook's recoveries (docs/operations.md) against a deployed stack or the
//! local one, through the AWS SDK and the same code the functions run. Feature `ops` (it brings
//! the AWS SDK into the command line tool; the default build stays without it).
//!
//! Each recovery is idempotent, like the paths it drives: redriving a message twice ingests or
//! closes it once, replaying an accepted event finds nothing, re-running a close writes each
//! period once, a refresh stores a new rate per pair.

use chrono::{DateTime, Utc};
use indicatif::ProgressBar;
use meterline_shared::adapters::aws::aws_sdk_sqs;
use meterline_shared::adapters::aws::aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageSystemAttributeName, QueueAttributeName,
    SendMessageBatchRequestEntry,
};
use meterline_shared::domain::usage::TimeRules;
use meterline_shared::ports::billing::CloseRequest;
use meterline_shared::ports::usage::{UsageQueue, UsageStore};
use meterline_shared::ports::StoreError;
use meterline_shared::services::closing::{CloseFailure, CloseReport, Closer};
use meterline_shared::services::replay::{replay_rejected, ReplayReport, ReplayRequest};

/// Why a recovery stopped.
#[derive(Debug, thiserror::Error)]
pub enum OpsError {
    #[error("SQS {action} on {queue}: {message}")]
    Sqs {
        action: &'static str,
        queue: String,
        message: String,
    },
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("close: {0}")]
    Close(#[from] CloseFailure),
    #[error("rate refresh: {0}")]
    Refresh(String),
}

fn sqs_error(action: &'static str, queue: &str, e: impl std::fmt::Display) -> OpsError {
    OpsError::Sqs {
        action,
        queue: queue.to_string(),
        message: e.to_string(),
    }
}

/// What a redrive did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Redriven {
    /// Sent to the source queue and deleted from the dead-letter queue.
    pub moved: usize,
    /// Not sent (SQS refused them): still in the dead-letter queue, visible again later.
    pub failed: usize,
}

/// The messages waiting in `queue_url` (`ApproximateNumberOfMessages`), for a progress bar.
pub async fn waiting(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> Result<u64, OpsError> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .map_err(|e| {
            sqs_error(
                "GetQueueAttributes",
                queue_url,
                aws_sdk_sqs::error::DisplayErrorContext(e),
            )
        })?;
    Ok(out
        .attributes()
        .and_then(|a| a.get(&QueueAttributeName::ApproximateNumberOfMessages))
        .and_then(|n| n.parse().ok())
        .unwrap_or(0))
}

/// Moves messages from a dead-letter queue back to its source queue: receive up to 10, send
/// them (body and attributes), delete those sent; until the dead-letter queue answers empty or
/// `limit` messages moved. A message is deleted only once its copy is on the source queue, so a
/// crash in between sends it twice, which the consumers' idempotency absorbs.
pub async fn redrive(
    sqs: &aws_sdk_sqs::Client,
    dlq_url: &str,
    target_url: &str,
    limit: Option<usize>,
    bar: &ProgressBar,
) -> Result<Redriven, OpsError> {
    let mut done = Redriven::default();
    loop {
        let want = limit.map_or(10, |l| l.saturating_sub(done.moved).min(10));
        if want == 0 {
            break;
        }
        let received = sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(want as i32)
            .wait_time_seconds(1)
            .visibility_timeout(60)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .message_attribute_names("All")
            .send()
            .await
            .map_err(|e| {
                sqs_error(
                    "ReceiveMessage",
                    dlq_url,
                    aws_sdk_sqs::error::DisplayErrorContext(e),
                )
            })?;
        let messages = received.messages();
        if messages.is_empty() {
            break;
        }
        let entries = messages
            .iter()
            .enumerate()
            .map(|(i, m)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(m.body().unwrap_or_default())
                    .set_message_attributes(m.message_attributes().cloned())
                    .build()
                    .map_err(|e| sqs_error("SendMessageBatch", target_url, e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let sent = sqs
            .send_message_batch()
            .queue_url(target_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| {
                sqs_error(
                    "SendMessageBatch",
                    target_url,
                    aws_sdk_sqs::error::DisplayErrorContext(e),
                )
            })?;
        done.failed += sent.failed().len();
        let deletes = sent
            .successful()
            .iter()
            .filter_map(|ok| ok.id().parse::<usize>().ok())
            .filter_map(|i| messages.get(i))
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle()?)
                    .build()
                    .ok()
            })
            .collect::<Vec<_>>();
        let n = deletes.len();
        if n > 0 {
            sqs.delete_message_batch()
                .queue_url(dlq_url)
                .set_entries(Some(deletes))
                .send()
                .await
                .map_err(|e| {
                    sqs_error(
                        "DeleteMessageBatch",
                        dlq_url,
                        aws_sdk_sqs::error::DisplayErrorContext(e),
                    )
                })?;
        }
        done.moved += n;
        bar.inc(n as u64);
        if n == 0 {
            // Every send failed: stop rather than spin; the messages are visible again later.
            break;
        }
    }
    Ok(done)
}

/// Replays rejected events (all of an account, or those without one when `account_id` is
/// `None`) with the current rules at `now`, as `POST .../usage/rejected/replay` does: each
/// event valid now is enqueued for ingestion and its rejected record removed.
pub async fn replay<S: UsageStore, Q: UsageQueue>(
    store: &S,
    queue: &Q,
    account_id: Option<&str>,
    request: &ReplayRequest,
    now: DateTime<Utc>,
    rules: &TimeRules,
) -> Result<ReplayReport, OpsError> {
    Ok(replay_rejected(store, queue, account_id, request, now, rules).await?)
}

/// Runs the close of one subscription now, as the close worker would for a close request:
/// every period ended by `now` is closed once and finished (numbered, events published).
pub async fn close(
    closer: &Closer<'_>,
    request: &CloseRequest,
    now: DateTime<Utc>,
) -> Result<CloseReport, OpsError> {
    Ok(closer.close_subscription(request, now).await?)
}

/// Runs one exchange-rate refresh with `app`'s configuration (the function's `FX_*`
/// variables), as its schedule would.
pub async fn refresh_rates(app: &rate_refresh::App) -> Result<rate_refresh::RefreshReport, OpsError> {
    rate_refresh::refresh_once(&app.sources, app.store.as_ref(), &app.config, Utc::now())
        .await
        .map_err(|e| OpsError::Refresh(e.to_string()))
}
