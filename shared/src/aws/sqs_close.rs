//! The [`CloseQueue`] on SQS: one message per close request, 10 per `SendMessageBatch`, up to
//! 16 batches in flight.

use crate::closing::{CloseQueue, CloseRequest};
use crate::store::StoreError;
use aws_sdk_sqs::error::DisplayErrorContext;
use aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use aws_sdk_sqs::Client;
use futures::stream::{self, TryStreamExt};

const MAX_ATTEMPTS: u32 = 4;
const IN_FLIGHT: usize = 16;

pub struct SqsCloseQueue {
    client: Client,
    queue_url: String,
}

impl SqsCloseQueue {
    pub fn new(client: Client, queue_url: String) -> Self {
        SqsCloseQueue { client, queue_url }
    }

    async fn send_batch(&self, requests: &[CloseRequest]) -> Result<(), StoreError> {
        let mut pending: Vec<(usize, String)> = requests
            .iter()
            .map(|r| serde_json::to_string(r).expect("requests serialize"))
            .enumerate()
            .collect();
        for attempt in 0..MAX_ATTEMPTS {
            let entries = pending
                .iter()
                .map(|(i, body)| {
                    SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .map_err(|e| StoreError::Corrupt(e.to_string()))
                })
                .collect::<Result<Vec<_>, _>>()?;
            let out = self
                .client
                .send_message_batch()
                .queue_url(&self.queue_url)
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
            "{} close requests could not be enqueued",
            pending.len()
        )))
    }
}

impl CloseQueue for SqsCloseQueue {
    async fn send(&self, requests: &[CloseRequest]) -> Result<(), StoreError> {
        stream::iter(requests.chunks(10).map(Ok))
            .try_for_each_concurrent(IN_FLIGHT, |chunk| self.send_batch(chunk))
            .await
    }
}
