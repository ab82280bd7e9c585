use anyhow::Context;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{service_fn, LambdaEvent};
use meterline_shared::adapters::aws::{
    aws_sdk_dynamodb, aws_sdk_eventbridge, aws_sdk_sqs, sdk_config, DynamoBillingStore, EventBridgePublisher,
    SqsCloseQueue,
};
use meterline_shared::adapters::config::{BillingConfig, Env};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    meterline_shared::adapters::telemetry::init();
    let config = BillingConfig::from_env(&Env::process()).context("configuration")?;
    let queue_url = config
        .close_queue_url
        .clone()
        .context("environment variable CLOSE_QUEUE_URL is required")?;
    let sdk = sdk_config().await;
    let store = &DynamoBillingStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table);
    let queue = &SqsCloseQueue::new(aws_sdk_sqs::Client::new(&sdk), queue_url);
    let publisher =
        &EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&sdk), config.event_bus.clone());
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent<serde_json::Value>>| async move {
            cycle_close::handle(store, queue, publisher, &event.payload, chrono::Utc::now())
                .await
                .map_err(lambda_runtime::Error::from)
        },
    ))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
