//! The rate-refresh Lambda: runs [`rate_refresh::refresh_once`] on an EventBridge schedule.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{service_fn, LambdaEvent};
use meterline_shared::adapters::aws::{sdk_config, AwsClients, DynamoRateStore};
use meterline_shared::adapters::config::{Env, RatesConfig};
use rate_refresh::{handle, sources_from_config, App, Config};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    meterline_shared::adapters::telemetry::init();
    // Refuse to start on a bad configuration rather than fail every invocation.
    let config = Config::from_env()?;
    let rates = RatesConfig::from_env(&Env::process())?;
    let sources = sources_from_config(&config)?;
    tracing::info!(
        providers = ?config.providers.iter().map(|p| p.name()).collect::<Vec<_>>(),
        pairs = ?config.pairs.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        cross_pairs = ?config.cross_pairs.iter().map(|c| c.target.to_string()).collect::<Vec<_>>(),
        pivot = %config.pivot,
        quorum = config.policy.quorum,
        table = %rates.table,
        "rate refresh configured"
    );
    let clients = AwsClients::for_function(&sdk_config().await, "RateRefreshFunction")?;
    let app = Arc::new(App {
        config,
        sources,
        store: Arc::new(DynamoRateStore::new(clients.dynamodb, rates.table)),
    });
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent<serde_json::Value>>| {
            let app = app.clone();
            async move {
                handle(&app, event.payload)
                    .await
                    .map_err(lambda_runtime::Error::from)
            }
        },
    ))
    .await
}
