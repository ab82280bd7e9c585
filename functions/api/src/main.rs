use anyhow::Context;
use lambda_http::{service_fn, Request};
use meterline_shared::adapters::aws::bootstrap::bootstrap_key;
use meterline_shared::adapters::aws::{
    sdk_config, AwsClients, DynamoApiKeyStore, DynamoBillingStore, DynamoIdempotencyStore, DynamoRateStore,
    DynamoUsageStore, EventBridgePublisher, SqsUsageQueue,
};
use meterline_shared::adapters::cached_rates::CachedRates;
use meterline_shared::adapters::config::{ApiConfig, BillingConfig, Env, RatesConfig, UsageConfig};
use std::sync::Arc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    meterline_shared::adapters::telemetry::init();
    let env = Env::process();
    let config = UsageConfig::from_env(&env).context("configuration")?;
    let api_config = ApiConfig::from_env(&env).context("configuration")?;
    let rates_config = RatesConfig::from_env(&env).context("configuration")?;
    let billing_config = BillingConfig::from_env(&env).context("configuration")?;
    let queue_url = env.required("USAGE_QUEUE_URL").context("configuration")?;
    let sdk = sdk_config().await;
    let clients = AwsClients::for_function(&sdk, "ApiFunction")?;
    let recorder = clients.recorder.clone();
    let ddb = clients.dynamodb;
    // Rates are read through a cache kept for the life of the execution environment.
    let rates = Arc::new(CachedRates::new(
        DynamoRateStore::new(ddb.clone(), rates_config.table),
        rates_config.cache_ttl,
    ));
    // One billing table holds accounts, the directory, issued invoices and budgets: the same
    // adapter serves each port.
    let billing_store = Arc::new(DynamoBillingStore::new(ddb.clone(), billing_config.table));
    let usage_store = Arc::new(DynamoUsageStore::new(
        ddb.clone(),
        config.tables,
        config.event_retention,
    ));
    let billing = api::billing::BillingApi {
        billing: billing_store.clone(),
        directory: billing_store.clone(),
        issued: billing_store.clone(),
        rates: rates.clone(),
        events: Arc::new(EventBridgePublisher::new(
            clients.eventbridge,
            billing_config.event_bus.clone(),
        )),
    };
    // Credit ledgers live in the billing table too.
    let top_ups: Arc<dyn meterline_shared::ports::top_ups::TopUpStore> = billing_store.clone();
    let credits = api::credits::CreditsApi {
        credits: billing_store.clone(),
        billing: billing_store.clone(),
        spend: billing_store.clone(),
        pause: api::credits::pause,
    };
    let estimates = api::estimates::EstimatesApi {
        billing: billing_store.clone(),
        budgets: billing_store,
        usage: usage_store.clone(),
        rates: rates.clone(),
    };
    let kept = config.ingest.granularities.clone();
    let mut api = api::Api::new(
        usage_store,
        Arc::new(SqsUsageQueue::new(clients.sqs, queue_url)),
        config.ingest.time_rules,
        Arc::new(DynamoApiKeyStore::new(ddb.clone(), api_config.api_keys_table)),
        Arc::new(DynamoIdempotencyStore::new(ddb, api_config.idempotency_table)),
    )
    .with_rates(api::rates::RatesApi::new(rates, rates_config.max_age))
    .with_estimates(estimates)
    .with_billing(billing)
    .with_credits(credits)
    .with_top_ups(top_ups)
    .with_granularities(kept);
    let secret = api_config.bootstrap_operator_key_secret.as_deref();
    if let Some(key) = bootstrap_key(&sdk, recorder.as_ref(), secret)
        .await
        .context("bootstrap key")?
    {
        api = api.with_bootstrap_key(&key);
    }
    let api = &api;
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, lambda_http::Error>(api.handle(req, chrono::Utc::now()).await)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
