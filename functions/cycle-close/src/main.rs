use anyhow::Context;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{service_fn, LambdaEvent};
use meterline_shared::adapters::aws::{
    sdk_config, AwsClients, DynamoBillingStore, EventBridgePublisher, SqsCloseQueue,
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
    let clients = AwsClients::for_function(&sdk_config().await, "CycleCloseFunction")?;
    let store = &DynamoBillingStore::new(clients.dynamodb, config.table);
    let queue = &SqsCloseQueue::new(clients.sqs, queue_url);
    let publisher = &EventBridgePublisher::new(clients.eventbridge, config.event_bus.clone());
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
