use anyhow::Context;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};
use meterline_shared::aws::{
    aws_sdk_dynamodb, aws_sdk_eventbridge, sdk_config, DynamoBillingStore, DynamoUsageStore,
    EventBridgePublisher,
};
use meterline_shared::closing::{CloseSettings, Closer};
use meterline_shared::config::{BillingConfig, Env, UsageConfig};
use meterline_shared::store::rates::{InMemoryRateStore, RateStore};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    meterline_shared::telemetry::init();
    let env = Env::process();
    let billing = BillingConfig::from_env(&env).context("configuration")?;
    let usage = UsageConfig::from_env(&env).context("configuration")?;
    let sdk = sdk_config().await;
    let ddb = aws_sdk_dynamodb::Client::new(&sdk);
    let billing_store = DynamoBillingStore::new(ddb.clone(), billing.table);
    let usage_store = DynamoUsageStore::new(ddb, usage.tables, usage.event_retention);
    // Until the DynamoDB rate store is deployed, rates come from an empty store: a close that
    // needs a conversion fails retryably (and reaches the dead-letter queue), never guesses.
    let rates: Box<dyn RateStore> = Box::new(InMemoryRateStore::new());
    let publisher = EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&sdk), billing.event_bus);
    let closer = &Closer {
        billing: &billing_store,
        usage: &usage_store,
        rates: rates.as_ref(),
        publisher: &publisher,
        settings: CloseSettings {
            late_usage_lookback: billing.late_usage_lookback,
            ..CloseSettings::default()
        },
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(
            close_worker::handle(closer, event.payload, chrono::Utc::now()).await,
        )
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
