//! The [`CloseQueue`] on SQS: one message per close request, 10 per `SendMessageBatch`, up to
//! 16 batches in flight.

use crate::ports::billing::{CloseQueue, CloseRequest};
use crate::ports::StoreError;
use aws_sdk_sqs::Client;
use futures::future::BoxFuture;
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

    #[allow(clippy::expect_used)] // Cannot fail: derived Serialize of a close request (strings, a time) cannot fail.
    async fn send_batch(&self, requests: &[CloseRequest]) -> Result<(), StoreError> {
        let bodies: Vec<String> = requests
            .iter()
            .map(|r| serde_json::to_string(r).expect("requests serialize"))
            .collect();
        super::sqs_usage::send_message_batch(
            &self.client,
            &self.queue_url,
            &bodies,
            MAX_ATTEMPTS,
            "close requests",
        )
        .await
    }
}

impl CloseQueue for SqsCloseQueue {
    fn send<'a>(&'a self, requests: &'a [CloseRequest]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            stream::iter(requests.chunks(10).map(Ok))
                .try_for_each_concurrent(IN_FLIGHT, |chunk| self.send_batch(chunk))
                .await
        })
    }
}
