//! The account estimate service: what an account's open billing period costs so far (and, with
//! the `forecast` feature, where it is heading), loaded from the ports the way the close worker
//! loads a period and rated through the close's own rating context.
//!
//! * the account, its subscription whose period holds `as_of`, the catalog, and the period's
//!   hourly aggregates ([`crate::services::closing::usage_rows`], the close's reader);
//! * the rating context from [`crate::domain::billing::rating_subscription`] (the plan prorated to the
//!   period, the account's tax position) and default market factors, as the close builds it;
//! * [`estimate::period_to_date`] (and [`crate::domain::forecast::estimate_period`]) over it.
//!
//! So for the same usage the period-to-date result equals the invoice the close produces, line
//! for line, to the minor unit (in the price books' currency; an invoice in another currency is
//! that result converted line by line at the period end's rate).

use crate::domain::billing::{
    rating_segment_at, rating_subscription, Account, BillingPeriod, BillingSubscription, CycleError,
};
use crate::domain::estimate::{self, PeriodToDate};
use crate::domain::pricing::CatalogData;
use crate::domain::pricing::{
    Catalog, MarketFactors, Period, RatingContext, RatingError, UsageRow, ValidationErrors,
};
use crate::ports::billing::BillingStore;
use crate::ports::usage::UsageStore;
use crate::ports::StoreError;
use crate::services::closing::usage_rows;
use chrono::{DateTime, TimeDelta, Utc};
use serde::{Deserialize, Serialize};

/// Why an account could not be estimated.
#[derive(Debug, thiserror::Error)]
pub enum EstimateFailure {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("account {0} does not exist")]
    UnknownAccount(String),
    #[error("account {0} has no subscription in force at {1}")]
    NoOpenPeriod(String, DateTime<Utc>),
    #[error("the price books are invalid: {0}")]
    Catalog(ValidationErrors),
    #[error(transparent)]
    Cycle(#[from] CycleError),
    #[error(transparent)]
    Rating(#[from] RatingError),
    #[cfg(feature = "forecast")]
    #[error(transparent)]
    Forecast(#[from] crate::domain::forecast::ForecastError),
}

impl EstimateFailure {
    /// The missing tax rate, when that is why the estimate failed (the account is taxed where
    /// the price books have no rate): a configuration the caller can be told about, not a fault.
    pub fn no_tax_rate(&self) -> Option<&crate::domain::pricing::NoTaxRate> {
        match self {
            EstimateFailure::Rating(RatingError::Tax(t)) => Some(t),
            #[cfg(feature = "forecast")]
            EstimateFailure::Forecast(crate::domain::forecast::ForecastError::Rating(RatingError::Tax(
                t,
            ))) => Some(t),
            _ => None,
        }
    }

    /// The caller asked about something that is not there (404), rather than a failure.
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            EstimateFailure::UnknownAccount(_) | EstimateFailure::NoOpenPeriod(..)
        )
    }
}

/// The period-to-date estimate of an account's open period.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountPeriodToDate {
    pub account_id: String,
    pub subscription_id: String,
    pub period: BillingPeriod,
    pub to_date: PeriodToDate,
}

/// The open period to date and its projection to the period's end.
#[cfg(feature = "forecast")]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccountEstimate {
    pub account_id: String,
    pub subscription_id: String,
    pub period: BillingPeriod,
    #[serde(flatten)]
    pub estimate: crate::domain::forecast::PeriodEstimate,
}

/// Everything one estimate rates.
pub struct Loaded {
    pub account: Account,
    pub subscription: BillingSubscription,
    pub period: BillingPeriod,
    pub catalog: Catalog,
    pub data: CatalogData,
    /// Hourly rows from `history_from` (or the period's start) to the period's end.
    pub rows: Vec<UsageRow>,
}

impl Loaded {
    /// Runs `f` with the rating context the close would use for this period.
    pub fn with_context<T>(&self, f: impl FnOnce(&RatingContext<'_>) -> T) -> T {
        let sub = rating_subscription(&self.account, &self.subscription, self.period);
        let market = MarketFactors::default();
        let ctx = RatingContext {
            catalog: &self.catalog,
            subscription: &sub,
            taxes: &self.data.taxes,
            market: &market,
        };
        f(&ctx)
    }

    /// Runs `f` with the rating context the close would rate usage starting at `t` with: the
    /// plan in force at `t` (after a change of plan inside the period, its segment's plan, not
    /// the plan the period started with), and the rows of the period the close rates with it.
    pub fn with_context_at<T>(
        &self,
        t: DateTime<Utc>,
        f: impl FnOnce(&RatingContext<'_>, Vec<UsageRow>) -> T,
    ) -> T {
        let seg = rating_segment_at(&self.account, &self.subscription, self.period, t);
        let rows = self
            .period_rows()
            .into_iter()
            .filter(|r| seg.holds(r.window_start))
            .collect();
        let market = MarketFactors::default();
        let ctx = RatingContext {
            catalog: &self.catalog,
            subscription: &seg.subscription,
            taxes: &self.data.taxes,
            market: &market,
        };
        f(&ctx, rows)
    }

    pub fn rating_period(&self) -> Period {
        Period::new(self.period.start, self.period.end)
    }

    /// The rows of the billing period itself.
    pub fn period_rows(&self) -> Vec<UsageRow> {
        self.rows
            .iter()
            .filter(|r| self.period.start <= r.window_start && r.window_start < self.period.end)
            .cloned()
            .collect()
    }
}

/// The subscription of `subs` in force at `as_of` (started, not cancelled), the lowest id first.
pub fn subscription_at(subs: &[BillingSubscription], as_of: DateTime<Utc>) -> Option<&BillingSubscription> {
    subs.iter()
        .filter(|s| s.started_at <= as_of && s.cancelled_at.is_none_or(|c| as_of < c))
        .min_by(|a, b| a.subscription_id.cmp(&b.subscription_id))
}

/// The estimate service over its ports.
pub struct AccountEstimator<'a> {
    pub billing: &'a dyn BillingStore,
    pub usage: &'a dyn UsageStore,
}

impl AccountEstimator<'_> {
    /// Loads the account's period holding `as_of`, with usage from `history` before `as_of`
    /// (none: from the period's start) to the period's end.
    pub async fn load(
        &self,
        account_id: &str,
        as_of: DateTime<Utc>,
        history: Option<TimeDelta>,
    ) -> Result<Loaded, EstimateFailure> {
        let account = self
            .billing
            .account(account_id)
            .await?
            .ok_or_else(|| EstimateFailure::UnknownAccount(account_id.to_string()))?;
        let subs = self.billing.account_subscriptions(account_id).await?;
        let subscription = subscription_at(&subs, as_of)
            .cloned()
            .ok_or_else(|| EstimateFailure::NoOpenPeriod(account_id.to_string(), as_of))?;
        let period = subscription.schedule.period_containing(as_of)?;
        let data = self.billing.catalog().await?;
        let catalog = Catalog::new(data.books.clone()).map_err(EstimateFailure::Catalog)?;
        let from = history.map_or(period.start, |h| (as_of - h).min(period.start));
        let rows = usage_rows(self.usage, account_id, from, period.end).await?;
        Ok(Loaded {
            account,
            subscription,
            period,
            catalog,
            data,
            rows,
        })
    }

    /// What the open period costs so far: usage with windows starting before `as_of`.
    pub async fn period_to_date(
        &self,
        account_id: &str,
        as_of: DateTime<Utc>,
    ) -> Result<AccountPeriodToDate, EstimateFailure> {
        let loaded = self.load(account_id, as_of, None).await?;
        let rows = loaded.period_rows();
        let to_date =
            loaded.with_context(|ctx| estimate::period_to_date(ctx, &rows, loaded.rating_period(), as_of))?;
        Ok(AccountPeriodToDate {
            account_id: account_id.to_string(),
            subscription_id: loaded.subscription.subscription_id.clone(),
            period: loaded.period,
            to_date,
        })
    }
}

/// History read for forecasts: 8 weeks of hourly windows (the model fits at most 8 × the
/// weekly season).
#[cfg(feature = "forecast")]
pub const FORECAST_HISTORY: TimeDelta = TimeDelta::days(56);

#[cfg(feature = "forecast")]
impl AccountEstimator<'_> {
    /// The period to date and its projection to the period's end, with 80 % and 95 % bands.
    pub async fn estimate(
        &self,
        account_id: &str,
        as_of: DateTime<Utc>,
        opts: &crate::domain::forecast::ForecastOptions,
    ) -> Result<AccountEstimate, EstimateFailure> {
        let loaded = self.load(account_id, as_of, Some(FORECAST_HISTORY)).await?;
        let estimate = loaded.with_context(|ctx| {
            crate::domain::forecast::estimate_period(ctx, &loaded.rows, loaded.rating_period(), as_of, opts)
        })?;
        Ok(AccountEstimate {
            account_id: account_id.to_string(),
            subscription_id: loaded.subscription.subscription_id.clone(),
            period: loaded.period,
            estimate,
        })
    }

    /// The `days` days after `as_of`, at book prices with the account's tax.
    pub async fn forecast_days(
        &self,
        account_id: &str,
        as_of: DateTime<Utc>,
        days: u32,
        opts: &crate::domain::forecast::ForecastOptions,
    ) -> Result<crate::domain::forecast::DaysForecast, EstimateFailure> {
        let mut loaded = self.load(account_id, as_of, Some(FORECAST_HISTORY)).await?;
        loaded.rows.retain(|r| r.window_start < as_of);
        Ok(loaded.with_context(|ctx| {
            crate::domain::forecast::forecast_days(ctx, &loaded.rows, as_of, days, opts)
        })?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::billing::plan_change::change_plan;
    use crate::domain::billing::{sample, Cadence};
    use crate::domain::estimate::{quote_job, JobSpec, PricingModel, QuoteContext};
    use crate::domain::meter::Meter;
    use crate::domain::money::Currency;
    use crate::domain::pricing::Plan;
    use rust_decimal::Decimal;

    fn t(s: &str) -> DateTime<Utc> {
        s.parse().unwrap()
    }

    /// December 2026 (Berlin) on Builder (3,600 CPU-seconds included), changed on the 11th to
    /// Pro (100,000 included).
    fn loaded() -> Loaded {
        let sub = sample::subscription("sub_1", "acct_1", Cadence::Monthly, t("2026-11-30T23:00:00Z"));
        let pro: Plan = serde_json::from_str(
            r#"{"name": "Pro", "recurring_fee": "31.00",
                "allowances": [{"meter": "cpu_seconds", "quantity": "100000"}]}"#,
        )
        .unwrap();
        let sub = change_plan(&sub, t("2026-12-11T00:00:00Z"), pro, None).unwrap();
        let period = sub.period_to_close().unwrap().unwrap();
        let data = sample::catalog();
        Loaded {
            account: sample::account("acct_1", Currency::USD),
            subscription: sub,
            period,
            catalog: Catalog::new(data.books.clone()).unwrap(),
            data,
            rows: Vec::new(),
        }
    }

    /// The subscription option of a two-hour, 1-vCPU job (7,200 CPU-seconds) starting at `start`.
    fn quote_at(l: &Loaded, start: &str) -> crate::domain::estimate::QuoteOption {
        let spec: JobSpec = serde_json::from_value(serde_json::json!({
            "provider_id": "prov_001", "start": start, "duration_seconds": 7200, "vcpus": "1"}))
        .unwrap();
        let q = l
            .with_context_at(spec.start, |ctx, rows| {
                quote_job(
                    &QuoteContext {
                        rating: *ctx,
                        period: l.rating_period(),
                        usage_so_far: &rows,
                        account_currency: Currency::USD,
                        fx: None,
                    },
                    &spec,
                )
            })
            .unwrap();
        q.options
            .into_iter()
            .find(|o| o.model == PricingModel::Subscription)
            .unwrap()
    }

    #[test]
    fn a_quote_after_a_change_of_plan_uses_the_plan_in_force_then() {
        let l = loaded();
        // After the change: Pro's allowance covers the job.
        let after = quote_at(&l, "2026-12-15T10:00:00Z");
        assert_eq!(after.units_left[&Meter::CpuSeconds], Decimal::from(100_000));
        assert_eq!(after.net, Decimal::ZERO);
        // Before it (what the quote used for the whole period): Builder's 3,600 s, the rest billed.
        let before = quote_at(&l, "2026-12-05T10:00:00Z");
        assert_eq!(before.units_left[&Meter::CpuSeconds], Decimal::from(3600));
        assert!(before.net > Decimal::ZERO, "{before:?}");
        // The period-start plan is still what `with_context` rates the whole period with.
        l.with_context(|ctx| assert_eq!(ctx.subscription.plan.name, "Builder"));
    }
}
