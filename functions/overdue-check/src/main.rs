use anyhow::Context;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{service_fn, LambdaEvent};
use meterline_shared::adapters::aws::{sdk_config, AwsClients, DynamoBillingStore, EventBridgePublisher};
use meterline_shared::adapters::config::{BillingConfig, Env};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    meterline_shared::adapters::telemetry::init();
    let config = BillingConfig::from_env(&Env::process()).context("configuration")?;
    let clients = AwsClients::for_function(&sdk_config().await, "OverdueCheckFunction")?;
    let store = &DynamoBillingStore::new(clients.dynamodb, config.table);
    let publisher = &EventBridgePublisher::new(clients.eventbridge, config.event_bus);
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent<serde_json::Value>>| async move {
            let summary = overdue_check::handle(store, publisher, &event.payload, chrono::Utc::now())
                .await
                .map_err(lambda_runtime::Error::from)?;
            Ok::<serde_json::Value, lambda_runtime::Error>(serde_json::json!({
                "checked": summary.checked,
                "marked_past_due": summary.marked_past_due,
                "fees_charged": summary.fees_charged,
            }))
        },
    ))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
