//! The scheduled budget check, over its ports: for every account in the budget index, the open
//! period's actual spend (period to date, [`crate::services::account_estimate`]) and, with the `forecast`
//! feature, its projected spend; [`check_budget`] per budget; each crossing's key claimed in the
//! store; `BudgetThresholdCrossed` published only for claims won. However often (and however
//! concurrently) the check runs, a threshold is announced once per budget and period.
//!
//! Spend is the gross total in the price books' currency. A budget in another currency is not
//! checked (logged and counted in `skipped`): converting a running total would need a rate the
//! period's invoice has not fixed yet.

use crate::domain::billing::BillingEvent;
use crate::domain::estimate::{check_budget, BudgetThresholdCrossed, EVENT_DETAIL_TYPE, EVENT_SOURCE};
use crate::domain::pricing::Period;
use crate::ports::billing::{BillingStore, EventPublisher};
use crate::ports::budgets::{BudgetStore, BUDGET_SHARDS};
use crate::ports::usage::UsageStore;
use crate::ports::StoreError;
use crate::services::account_estimate::{AccountEstimator, EstimateFailure};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::BTreeSet;

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BudgetCheckSummary {
    pub accounts: usize,
    pub budgets: usize,
    /// Alerts published by this run.
    pub published: usize,
    /// Crossings another run had already claimed.
    pub already_notified: usize,
    /// Budgets not checked (no open period, other currency, unreadable account).
    pub skipped: usize,
}

/// The run failed on storage or publishing; what was claimed and published stays so.
#[derive(Debug, thiserror::Error)]
pub enum BudgetCheckError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
}

/// The EventBridge event of an alert: source `meterline.budgets`, the crossing as detail.
#[allow(clippy::expect_used)] // Cannot fail: derived Serialize of the alert cannot fail.
pub fn alert_event(crossed: &BudgetThresholdCrossed) -> BillingEvent {
    let mut detail = serde_json::to_value(crossed).expect("the alert serializes");
    detail["event_id"] = serde_json::Value::String(crossed.idempotency_key.clone());
    BillingEvent {
        source: Some(EVENT_SOURCE.to_string()),
        detail_type: EVENT_DETAIL_TYPE.to_string(),
        detail,
    }
}

/// Spend of one account's open period: actual and (with the forecast feature) projected.
struct Spend {
    period: Period,
    currency: crate::domain::money::Currency,
    actual: Decimal,
    forecast: Option<Decimal>,
}

async fn spend(
    estimator: &AccountEstimator<'_>,
    account_id: &str,
    at: DateTime<Utc>,
    with_forecast: bool,
) -> Result<Spend, EstimateFailure> {
    #[cfg(feature = "forecast")]
    if with_forecast {
        let e = estimator
            .estimate(
                account_id,
                at,
                &crate::domain::forecast::ForecastOptions::hourly(),
            )
            .await?;
        return Ok(Spend {
            period: Period::new(e.period.start, e.period.end),
            currency: e.estimate.to_date.result.currency,
            actual: e.estimate.to_date.result.total,
            forecast: Some(e.estimate.spend.point),
        });
    }
    let _ = with_forecast;
    let p = estimator.period_to_date(account_id, at).await?;
    Ok(Spend {
        period: Period::new(p.period.start, p.period.end),
        currency: p.to_date.result.currency,
        actual: p.to_date.result.total,
        forecast: None,
    })
}

/// Checks every budget at `at`. `with_forecast` adds the projected spend (only when the crate is
/// built with the `forecast` feature; otherwise actual spend alone is checked).
pub async fn run_budget_check(
    billing: &dyn BillingStore,
    usage: &dyn UsageStore,
    budgets: &dyn BudgetStore,
    publisher: &dyn EventPublisher,
    at: DateTime<Utc>,
    with_forecast: bool,
) -> Result<BudgetCheckSummary, BudgetCheckError> {
    let estimator = AccountEstimator { billing, usage };
    let mut summary = BudgetCheckSummary::default();
    for shard in 0..BUDGET_SHARDS {
        summary.published += send_unsent(budgets, publisher, shard).await?;
        for account_id in budgets.budgeted_accounts(shard).await? {
            let list = budgets.budgets(&account_id).await?;
            if list.is_empty() {
                continue;
            }
            summary.accounts += 1;
            summary.budgets += list.len();
            let spend = match spend(&estimator, &account_id, at, with_forecast).await {
                Ok(s) => s,
                Err(EstimateFailure::Store(e)) => return Err(e.into()),
                Err(e) => {
                    tracing::warn!(account_id = %account_id, error = %e, "budgets not checked");
                    summary.skipped += list.len();
                    continue;
                }
            };
            for budget in &list {
                if budget.currency != spend.currency {
                    tracing::warn!(
                        account_id = %account_id,
                        budget_id = %budget.budget_id,
                        budget_currency = budget.currency.code(),
                        spend_currency = spend.currency.code(),
                        "budget not checked: its currency is not the price books'"
                    );
                    summary.skipped += 1;
                    continue;
                }
                let crossed = check_budget(
                    budget,
                    spend.period,
                    spend.actual,
                    spend.forecast,
                    &BTreeSet::new(),
                );
                for c in crossed {
                    // A claim left unsent by a check that failed or stopped before publishing
                    // is this check's to send (at least once: the event keeps its id).
                    let won = budgets.claim_notification(&c).await?;
                    if !won && !budgets.notification_unsent(&c.idempotency_key).await? {
                        summary.already_notified += 1;
                        continue;
                    }
                    // If publishing fails the claim stays unsent and a later run announces it,
                    // in this period or after it ([`send_unsent`]). (Giving the claim back
                    // instead would race a run publishing it meanwhile: the alert out, and its
                    // claim gone.)
                    publish(budgets, publisher, &c).await?;
                    tracing::info!(
                        account_id = %c.account_id,
                        budget_id = %c.budget_id,
                        threshold_percent = c.threshold_percent,
                        basis = ?c.basis,
                        spend = %c.spend,
                        "budget threshold crossed"
                    );
                    summary.published += 1;
                }
            }
        }
    }
    Ok(summary)
}

/// Publishes `alert` and records it sent.
async fn publish(
    budgets: &dyn BudgetStore,
    publisher: &dyn EventPublisher,
    alert: &BudgetThresholdCrossed,
) -> Result<(), BudgetCheckError> {
    publisher.publish(&[alert_event(alert)]).await?;
    budgets.notification_sent(alert).await?;
    Ok(())
}

/// Sends the alerts of `shard` that earlier checks claimed and did not publish, whatever their
/// period: a check that failed between claim and publish in the last hour of a period leaves
/// one that the current period's crossings no longer name. An alert found published already
/// (its check stopped before delisting it) is only delisted. Returns how many were published.
async fn send_unsent(
    budgets: &dyn BudgetStore,
    publisher: &dyn EventPublisher,
    shard: u32,
) -> Result<usize, BudgetCheckError> {
    let mut published = 0;
    for alert in budgets.unsent_notifications(shard).await? {
        if !budgets.notification_unsent(&alert.idempotency_key).await? {
            budgets.notification_sent(&alert).await?;
            continue;
        }
        publish(budgets, publisher, &alert).await?;
        tracing::info!(
            account_id = %alert.account_id,
            budget_id = %alert.budget_id,
            threshold_percent = alert.threshold_percent,
            period_start = %alert.period.start,
            "budget alert left unsent by an earlier check sent"
        );
        published += 1;
    }
    Ok(published)
}

#[cfg(test)]
mod tests;
