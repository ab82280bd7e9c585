//! What a job's authorization holds: the price of its quote for its maximum duration, and the
//! scope of the job (its provider and every meter it uses).

use super::grant::ChargeScope;
use crate::domain::estimate::{JobSpec, PricingModel, Quote};
use crate::domain::money::Money;
use crate::domain::usage::Dimensions;
use rust_decimal::RoundingStrategy;

/// Why a quote cannot price a hold.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HoldPriceError {
    #[error("the quote has no option the account would be billed under")]
    NoOption,
    #[error("part of the job's usage has no price, so no hold can cover it")]
    Unpriced,
}

/// The amount to hold for a quoted job: the total of the option the account would be billed
/// under (its own plan when the quote has one, else pay per use), rounded up to the currency's
/// minor units, so the hold is never less than the quote. A job with usage its option cannot
/// price is refused rather than held at less than it costs.
pub fn hold_amount(quote: &Quote) -> Result<Money, HoldPriceError> {
    let pick = |model| quote.options.iter().find(|o| o.model == model);
    let option = pick(PricingModel::Subscription)
        .or_else(|| pick(PricingModel::PayPerUse))
        .ok_or(HoldPriceError::NoOption)?;
    if !option.unpriced.is_empty() {
        return Err(HoldPriceError::Unpriced);
    }
    let places = quote.currency.minor_units();
    let amount = option
        .total
        .round_dp_with_strategy(places, RoundingStrategy::AwayFromZero);
    Ok(Money::new(amount, quote.currency))
}

/// The charge scope of a job: its provider and the meters of the usage it would report.
pub fn job_scope(spec: &JobSpec) -> ChargeScope {
    let meters = spec.rows(&Dimensions::default()).into_iter().map(|r| r.meter);
    ChargeScope::job(&spec.provider_id, meters)
}
