use anyhow::Context;
use aws_lambda_events::eventbridge::EventBridgeEvent;
use lambda_runtime::{service_fn, LambdaEvent};
use meterline_shared::adapters::aws::{
    sdk_config, AwsClients, DynamoBillingStore, DynamoUsageStore, EventBridgePublisher,
};
use meterline_shared::adapters::config::{BillingConfig, Env, UsageConfig};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    meterline_shared::adapters::telemetry::init();
    let env = Env::process();
    let billing = BillingConfig::from_env(&env).context("configuration")?;
    let usage = UsageConfig::from_env(&env).context("configuration")?;
    let with_forecast = budget_check::forecast_enabled(&env).context("configuration")?;
    let clients = AwsClients::for_function(&sdk_config().await, "BudgetCheckFunction")?;
    let ddb = clients.dynamodb;
    // Budgets and alert claims live in the billing table.
    let billing_store = DynamoBillingStore::new(ddb.clone(), billing.table);
    let usage_store = DynamoUsageStore::new(ddb, usage.tables, usage.event_retention);
    let publisher = EventBridgePublisher::new(clients.eventbridge, billing.event_bus);
    let check = &budget_check::BudgetCheck {
        billing: &billing_store,
        usage: &usage_store,
        budgets: &billing_store,
        publisher: &publisher,
        with_forecast,
    };
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<EventBridgeEvent<serde_json::Value>>| async move {
            let s = check
                .handle(&event.payload, chrono::Utc::now())
                .await
                .map_err(lambda_runtime::Error::from)?;
            Ok::<serde_json::Value, lambda_runtime::Error>(serde_json::json!({
                "accounts": s.accounts,
                "budgets": s.budgets,
                "published": s.published,
                "already_notified": s.already_notified,
                "skipped": s.skipped,
            }))
        },
    ))
    .await
    .map_err(|e| anyhow::anyhow!(e))
}
