//! Adapters from the ports in [`crate::ports::usage`] to AWS: DynamoDB for storage (usage and exchange
//! rates), SQS for the usage queue. They read `AWS_ENDPOINT_URL` like every AWS SDK, so the same code talks to a local
//! endpoint (moto_server) or to AWS.

pub mod attrs;
pub mod bootstrap;
pub mod calls;
pub(crate) mod dynamo;
pub mod dynamo_billing;
pub mod dynamo_budgets;
pub mod dynamo_credits;
pub mod dynamo_directory;
pub mod dynamo_idempotency;
pub mod dynamo_invoices;
pub mod dynamo_keys;
pub mod dynamo_rates;
pub mod dynamo_spend;
pub mod dynamo_top_ups;
pub mod dynamo_usage;
pub mod eventbridge;
#[cfg(test)]
mod scripted;
pub mod sqs_close;
pub mod sqs_usage;

pub use calls::{AwsClients, CallRecorder};
pub use dynamo::WriteUnits;
pub use dynamo_billing::DynamoBillingStore;
pub use dynamo_idempotency::DynamoIdempotencyStore;
pub use dynamo_keys::DynamoApiKeyStore;
pub use dynamo_rates::DynamoRateStore;
pub use dynamo_usage::{DynamoUsageStore, WriteStats};
pub use eventbridge::EventBridgePublisher;
pub use sqs_close::SqsCloseQueue;
pub use sqs_usage::SqsUsageQueue;

/// Loads the SDK configuration from the environment (region, credentials, endpoint).
pub async fn sdk_config() -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .load()
        .await
}

/// A `TransactWriteItems` failure worth retrying as is: another transaction on the same items in
/// flight, throttling, or a server error. (A cancellation is decided by its reasons instead.)
pub(crate) fn is_transient(
    e: &aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError,
) -> bool {
    use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError as E;
    matches!(
        e,
        E::TransactionInProgressException(_)
            | E::ProvisionedThroughputExceededException(_)
            | E::ThrottlingException(_)
            | E::RequestLimitExceeded(_)
            | E::InternalServerError(_)
    )
}

/// Waits before retry `attempt` (0-based): exponential from 20 ms, capped at 1 s, with jitter.
pub(crate) async fn backoff(attempt: u32) {
    let base = 20u64.saturating_mul(1 << attempt.min(6)).min(1000);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos() as u64)
        .unwrap_or(0);
    let jitter = nanos % (base / 2 + 1);
    tokio::time::sleep(std::time::Duration::from_millis(base / 2 + jitter)).await;
}

pub use aws_config;
pub use aws_sdk_dynamodb;
pub use aws_sdk_eventbridge;
pub use aws_sdk_secretsmanager;
pub use aws_sdk_sqs;

/// [`backoff`] as a boxed future: the pause of a service that retries a lost race
/// (`services::credits::Pause`).
pub fn pause(attempt: u32) -> futures::future::BoxFuture<'static, ()> {
    Box::pin(backoff(attempt))
}
