//! The budget check: run by an EventBridge schedule (hourly by default). For every account in
//! the budget index it rates the open period to date and its forecast, and publishes
//! `BudgetThresholdCrossed` (source `meterline.budgets`) for each threshold crossed, once per
//! budget and period however often it runs; see `meterline_shared::services::budget_check`.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Utc};
use meterline_shared::adapters::config::{ConfigError, Env};
use meterline_shared::adapters::metrics::Metrics;
use meterline_shared::ports::billing::{BillingStore, EventPublisher};
use meterline_shared::ports::budgets::BudgetStore;
use meterline_shared::ports::usage::UsageStore;
use meterline_shared::services::budget_check::{run_budget_check, BudgetCheckError, BudgetCheckSummary};

/// `BUDGET_CHECK_FORECAST` (`true`/`false`, default `true`): whether forecast spend is checked
/// as well as actual spend.
pub fn forecast_enabled<F: Fn(&str) -> Option<String>>(env: &Env<F>) -> Result<bool, ConfigError> {
    match env.optional("BUDGET_CHECK_FORECAST").as_deref() {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => Err(ConfigError::Invalid {
            name: "BUDGET_CHECK_FORECAST",
            reason: format!("`{other}` is neither true nor false"),
        }),
    }
}

/// The function's dependencies.
pub struct BudgetCheck<'a> {
    pub billing: &'a dyn BillingStore,
    pub usage: &'a dyn UsageStore,
    pub budgets: &'a dyn BudgetStore,
    pub publisher: &'a dyn EventPublisher,
    pub with_forecast: bool,
}

impl BudgetCheck<'_> {
    /// Checks at the earlier of the event's scheduled time and `now`.
    pub async fn handle(
        &self,
        event: &EventBridgeEvent<serde_json::Value>,
        now: DateTime<Utc>,
    ) -> Result<BudgetCheckSummary, BudgetCheckError> {
        let at = event.time.map_or(now, |t| t.min(now));
        let summary = run_budget_check(
            self.billing,
            self.usage,
            self.budgets,
            self.publisher,
            at,
            self.with_forecast,
        )
        .await?;
        tracing::info!(
            accounts = summary.accounts,
            budgets = summary.budgets,
            published = summary.published,
            already_notified = summary.already_notified,
            skipped = summary.skipped,
            "budget check done"
        );
        Metrics::new("budget-check", "budget check metrics")
            .count("BudgetsChecked", summary.budgets)
            .count("BudgetAlertsSent", summary.published)
            .count("BudgetsSkipped", summary.skipped)
            .emit();
        Ok(summary)
    }
}
