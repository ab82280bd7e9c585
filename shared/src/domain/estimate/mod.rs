//! Cost estimates: job quotes, the period-to-date estimate and budget thresholds.
//!
//! Nothing here prices usage itself: every amount comes from [`crate::domain::pricing::rate`], the
//! function the invoice close calls, so an estimate and the invoice agree to the minor unit for
//! the same usage. Rules and worked examples: `docs/estimates-and-forecasts.md`.

pub mod budget;
pub mod period;
pub mod quote;

#[cfg(test)]
mod tests;

pub use budget::{
    check_budget, threshold_key, Budget, BudgetThresholdCrossed, SpendBasis, DEFAULT_THRESHOLDS,
    EVENT_DETAIL_TYPE, EVENT_SOURCE,
};
pub use period::{period_to_date, rate_period, PeriodToDate};
pub use quote::{quote_job, JobSpec, PricingModel, Quote, QuoteContext, QuoteError, QuoteLine, QuoteOption};
