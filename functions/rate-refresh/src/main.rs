//! The rate-refresh Lambda: runs [`rate_refresh::refresh_once`] on an EventBridge schedule.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{service_fn, LambdaEvent};
use rate_refresh::{handle, sources_from_config, App, Config, InMemoryRateStore, RateStore};
use std::sync::Arc;

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    lambda_runtime::tracing::init_default_subscriber();
    // Refuse to start on a bad configuration rather than fail every invocation.
    let config = Config::from_env()?;
    let sources = sources_from_config(&config)?;
    tracing::info!(
        providers = ?config.providers.iter().map(|p| p.name()).collect::<Vec<_>>(),
        pairs = ?config.pairs.iter().map(|p| p.to_string()).collect::<Vec<_>>(),
        quorum = config.policy.quorum,
        "rate refresh configured"
    );
    let app = Arc::new(App {
        config,
        sources,
        store: store(),
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

/// The rate store behind the [`RateStore`] port.
///
/// This is the in-memory store, which lives only as long as the execution environment: the
/// DynamoDB store is plugged in here by the deployment wiring. Nothing else changes.
fn store() -> Arc<dyn RateStore> {
    Arc::new(InMemoryRateStore::new())
}
