use anyhow::Context;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{service_fn, LambdaEvent};
use meterline_shared::adapters::aws::{sdk_config, AwsClients, DynamoBillingStore, EventBridgePublisher};
use meterline_shared::adapters::config::{BillingConfig, Env};
use meterline_shared::domain::billing::events::PaymentResult;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    meterline_shared::adapters::telemetry::init();
    let config = BillingConfig::from_env(&Env::process()).context("configuration")?;
    let clients = AwsClients::for_function(&sdk_config().await, "PaymentResultFunction")?;
    let store = &DynamoBillingStore::new(clients.dynamodb, config.table);
    let publisher = &EventBridgePublisher::new(clients.eventbridge, config.event_bus);
    let top_ups = &payment_result::TopUpStores {
        top_ups: store,
        credits: store,
        pause: meterline_shared::adapters::aws::pause,
    };
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent<PaymentResult>>| async move {
            // An error fails the invocation: Lambda retries the event (asynchronous invoke).
            let outcome = payment_result::handle_result(store, publisher, top_ups, &event.payload)
                .await
                .map_err(lambda_runtime::Error::from)?;
            Ok::<String, lambda_runtime::Error>(format!("{outcome:?}"))
        },
    ))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
