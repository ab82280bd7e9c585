use anyhow::Context;
use lambda_http::{service_fn, Request};
use meterline_shared::aws::{
    aws_sdk_dynamodb, aws_sdk_sqs, sdk_config, DynamoBillingStore, DynamoRateStore, DynamoUsageStore,
    SqsUsageQueue,
};
use meterline_shared::config::{BillingConfig, Env, RatesConfig, UsageConfig};
use meterline_shared::store::cached_rates::CachedRates;
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    meterline_shared::telemetry::init();
    let env = Env::process();
    let config = UsageConfig::from_env(&env).context("configuration")?;
    let queue_url = env.required("USAGE_QUEUE_URL").context("configuration")?;
    let rates_config = RatesConfig::from_env(&env).context("configuration")?;
    let billing_config = BillingConfig::from_env(&env).context("configuration")?;
    let sdk = sdk_config().await;
    // Rates are read through a cache kept for the life of the execution environment.
    let rates = Arc::new(CachedRates::new(
        DynamoRateStore::new(aws_sdk_dynamodb::Client::new(&sdk), rates_config.table),
        rates_config.cache_ttl,
    ));
    let api = &api::Api {
        store: DynamoUsageStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            config.tables.clone(),
            config.event_retention,
        ),
        queue: SqsUsageQueue::new(aws_sdk_sqs::Client::new(&sdk), queue_url),
        time_rules: config.ingest.time_rules,
        rates: api::rates::RatesApi::new(rates.clone(), rates_config.max_age),
        // Budgets live in the billing table; estimates read it and the usage aggregates.
        estimates: api::estimates::EstimatesApi {
            billing: DynamoBillingStore::new(aws_sdk_dynamodb::Client::new(&sdk), billing_config.table),
            usage: DynamoUsageStore::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                config.tables,
                config.event_retention,
            ),
            rates,
        },
    };
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, lambda_http::Error>(api.handle(req, chrono::Utc::now()).await)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
