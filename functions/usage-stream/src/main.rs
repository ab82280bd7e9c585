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
    // The runtime client's connection to the Runtime API can be closed under it between two
    // invocations ("connection closed before message completed" right after a streamed response,
    // seen under `cargo lambda watch`); the loop then ends with that error although the Runtime
    // API is still there. Start the loop again instead of ending the environment; failures in
    // quick succession (a Runtime API that is really gone) end it.
    let mut quick_failures = 0;
    loop {
        let started = std::time::Instant::now();
        let ended = lambda_http::run_with_streaming_response(service_fn(move |req: Request| async move {
            Ok::<_, lambda_http::Error>(function.handle(req).await)
        }))
        .await;
        let Err(e) = ended else { return Ok(()) };
        quick_failures = if started.elapsed() < RESTART_WINDOW {
            quick_failures + 1
        } else {
            1
        };
        if quick_failures > MAX_QUICK_RESTARTS {
            return Err(anyhow::anyhow!(e).context("the runtime loop failed repeatedly"));
        }
        tracing::warn!(error = %e, quick_failures, "the runtime loop ended; starting it again");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A runtime loop that ends sooner than this after its start counts as a quick failure.
const RESTART_WINDOW: std::time::Duration = std::time::Duration::from_secs(10);
/// Quick failures in a row after which the process ends (Lambda then starts a new environment).
const MAX_QUICK_RESTARTS: u32 = 3;
