//! The [`UsageQueue`] on SQS.

use crate::domain::usage::intake::queue_bodies;
use crate::domain::usage::UsageEvent;
use crate::ports::usage::UsageQueue;
use crate::ports::StoreError;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use futures::future::BoxFuture;

/// SQS limits one `SendMessageBatch` to 10 entries and 256 KiB in all.
const MAX_BATCH_ENTRIES: usize = 10;
const MAX_BATCH_BYTES: usize = 250 * 1024;

/// Sends usage to the ingestion queue.
pub struct SqsUsageQueue {
    client: Client,
    queue_url: String,
}

impl SqsUsageQueue {
    pub fn new(client: Client, queue_url: String) -> Self {
        SqsUsageQueue { client, queue_url }
    }

    async fn send_batch(&self, bodies: &[String]) -> Result<(), StoreError> {
        send_message_batch(&self.client, &self.queue_url, bodies, 3, "messages").await
    }
}

/// Sends up to 10 bodies in one `SendMessageBatch`, resending only the entries SQS reports as
/// failed, up to `attempts` times with backoff. `what` names the bodies in the error.
pub(crate) async fn send_message_batch(
    client: &Client,
    queue_url: &str,
    bodies: &[String],
    attempts: u32,
    what: &str,
) -> Result<(), StoreError> {
    let mut pending: Vec<(usize, &String)> = bodies.iter().enumerate().collect();
    for attempt in 0..attempts {
        let entries = pending
            .iter()
            .map(|(i, body)| {
                SendMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .message_body(body.as_str())
                    .build()
                    .map_err(|e| StoreError::Corrupt(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let out = client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .map_err(|e| StoreError::Unavailable(DisplayErrorContext(&e).to_string()))?;
        let failed: Vec<String> = out.failed().iter().map(|f| f.id().to_string()).collect();
        if failed.is_empty() {
            return Ok(());
        }
        pending.retain(|(i, _)| failed.contains(&i.to_string()));
        super::backoff(attempt).await;
    }
    Err(StoreError::Unavailable(format!(
        "{} {what} could not be enqueued",
        pending.len()
    )))
}

impl UsageQueue for SqsUsageQueue {
    fn enqueue<'a>(&'a self, events: &'a [UsageEvent]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let bodies = queue_bodies(events);
            let mut batch: Vec<String> = Vec::new();
            let mut size = 0;
            for body in bodies {
                if !batch.is_empty()
                    && (batch.len() == MAX_BATCH_ENTRIES || size + body.len() > MAX_BATCH_BYTES)
                {
                    self.send_batch(&batch).await?;
                    batch.clear();
                    size = 0;
                }
                size += body.len();
                batch.push(body);
            }
            if !batch.is_empty() {
                self.send_batch(&batch).await?;
            }
            Ok(())
        })
    }
}
