use anyhow::Context;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};
use meterline_shared::adapters::aws::{
    sdk_config, AwsClients, DynamoBillingStore, DynamoRateStore, DynamoUsageStore, EventBridgePublisher,
};
use meterline_shared::adapters::cached_rates::CachedRates;
use meterline_shared::adapters::config::{BillingConfig, Env, RatesConfig, UsageConfig};
use meterline_shared::services::closing::{CloseSettings, Closer};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    meterline_shared::adapters::telemetry::init();
    let env = Env::process();
    let billing = BillingConfig::from_env(&env).context("configuration")?;
    let usage = UsageConfig::from_env(&env).context("configuration")?;
    let rates_config = RatesConfig::from_env(&env).context("configuration")?;
    let clients = AwsClients::for_function(&sdk_config().await, "CloseWorkerFunction")?;
    let ddb = clients.dynamodb;
    let billing_store = DynamoBillingStore::new(ddb.clone(), billing.table);
    // A close converts with the rate in force at its period's end (`RateStore::rate_at`); a
    // missing rate fails the close retryably, never a guess. Reads are cached for the
    // execution environment's life.
    let rates = CachedRates::new(
        DynamoRateStore::new(ddb.clone(), rates_config.table),
        rates_config.cache_ttl,
    );
    let usage_store = DynamoUsageStore::new(ddb, usage.tables, usage.event_retention);
    let publisher = EventBridgePublisher::new(clients.eventbridge, billing.event_bus);
    let closer = &Closer {
        billing: &billing_store,
        usage: &usage_store,
        rates: &rates,
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
