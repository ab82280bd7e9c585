use anyhow::Context;
use aws_lambda_events::sqs::{SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};
use meterline_shared::adapters::aws::{
    pause, sdk_config, AwsClients, DynamoBillingStore, DynamoUsageStore, EventBridgePublisher,
};
use meterline_shared::adapters::config::{BillingConfig, Env, UsageConfig};
use std::sync::Arc;
use usage_ingest::{CreditDraw, Ingestor};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    meterline_shared::adapters::telemetry::init();
    let env = Env::process();
    let config = UsageConfig::from_env(&env).context("configuration")?;
    let billing_config = BillingConfig::from_env(&env).context("configuration")?;
    let clients = AwsClients::for_function(&sdk_config().await, "UsageIngestFunction")?;
    // Credit ledgers, accounts, subscriptions and the catalog live in the billing table.
    let billing = Arc::new(DynamoBillingStore::new(
        clients.dynamodb.clone(),
        billing_config.table,
    ));
    let publisher = Arc::new(EventBridgePublisher::new(
        clients.eventbridge.clone(),
        billing_config.event_bus,
    ));
    let draw = &CreditDraw {
        credits: billing.clone(),
        spend: billing.clone(),
        billing,
        pause,
        publisher,
    };
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
            ingestor
                .handle_and_draw(event.payload, chrono::Utc::now(), draw)
                .await
                .0,
        )
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
