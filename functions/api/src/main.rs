use anyhow::Context;
use lambda_http::{service_fn, Request};
use meterline_shared::aws::{aws_sdk_dynamodb, aws_sdk_sqs, sdk_config, DynamoUsageStore, SqsUsageQueue};
use meterline_shared::config::{Env, UsageConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    meterline_shared::telemetry::init();
    let env = Env::process();
    let config = UsageConfig::from_env(&env).context("configuration")?;
    let queue_url = env.required("USAGE_QUEUE_URL").context("configuration")?;
    let sdk = sdk_config().await;
    let api = &api::Api {
        store: DynamoUsageStore::new(
            aws_sdk_dynamodb::Client::new(&sdk),
            config.tables,
            config.event_retention,
        ),
        queue: SqsUsageQueue::new(aws_sdk_sqs::Client::new(&sdk), queue_url),
        time_rules: config.ingest.time_rules,
    };
    lambda_http::run(service_fn(move |req: Request| async move {
        Ok::<_, lambda_http::Error>(api.handle(req, chrono::Utc::now()).await)
    }))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
