use anyhow::Context;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};
use meterline_shared::adapters::aws::{sdk_config, AwsClients, DynamoUsageStore};
use meterline_shared::adapters::config::{Env, UsageConfig};
use std::sync::Arc;
use usage_ingest::Ingestor;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    meterline_shared::adapters::telemetry::init();
    let config = UsageConfig::from_env(&Env::process()).context("configuration")?;
    let clients = AwsClients::for_function(&sdk_config().await, "UsageIngestFunction")?;
    let store = Arc::new(DynamoUsageStore::new(
        clients.dynamodb,
        config.tables,
        config.event_retention,
    ));
    let ingestor = &Ingestor {
        store,
        settings: config.ingest,
    };
    lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| async move {
        Ok::<SqsBatchResponse, lambda_runtime::Error>(
            ingestor.handle(event.payload, chrono::Utc::now()).await,
        )
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
