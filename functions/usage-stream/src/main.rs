use anyhow::Context;
use lambda_http::{service_fn, Request};
use meterline_shared::adapters::aws::bootstrap::bootstrap_key;
use meterline_shared::adapters::aws::{sdk_config, AwsClients, DynamoApiKeyStore, DynamoUsageStore};
use meterline_shared::adapters::config::{Env, StreamConfig, UsageConfig};
use meterline_shared::services::authenticate::bootstrap_record;
use std::sync::Arc;
use usage_stream::StreamFunction;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    meterline_shared::adapters::telemetry::init();
    let env = Env::process();
    let usage = UsageConfig::from_env(&env).context("configuration")?;
    let config = StreamConfig::from_env(&env).context("configuration")?;
    let sdk = sdk_config().await;
    let clients = AwsClients::for_function(&sdk, "UsageStreamFunction")?;
    let recorder = clients.recorder.clone();
    let ddb = clients.dynamodb;
    let function = StreamFunction {
        store: Arc::new(DynamoUsageStore::new(
            ddb.clone(),
            usage.tables,
            usage.event_retention,
        )),
        keys: Arc::new(DynamoApiKeyStore::new(ddb, config.api_keys_table.clone())),
        bootstrap: bootstrap_key(
            &sdk,
            recorder.as_ref(),
            config.bootstrap_operator_key_secret.as_deref(),
        )
        .await
        .context("bootstrap key")?
        .map(|k| bootstrap_record(&k, chrono::Utc::now())),
        config,
    };
    let function = &function;
    lambda_http::run_with_streaming_response(service_fn(move |req: Request| async move {
        Ok::<_, lambda_http::Error>(function.handle(req).await)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
