//! Requests of the top-up routes.

use super::types::{Amount, CurrencyCode, RefId};
use chrono::{DateTime, Utc};
use meterline_shared::domain::credits::TopUp;
use meterline_shared::domain::money::Money;
use meterline_shared::domain::usage::FieldError;
use serde::Deserialize;
use utoipa::ToSchema;

/// Prepaid credit bought: the payment service is asked to charge it, and its grant is made when
/// the payment succeeds.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"top_up_id": "topup_1", "amount": "100.00", "currency": "USD"}))]
pub struct NewTopUp {
    /// The top-up's id, also its grant's: asking again with the same amount changes nothing.
    #[schema(inline)]
    pub top_up_id: RefId,
    /// More than zero, in the currency's minor units at most.
    #[schema(inline)]
    pub amount: Amount,
    #[schema(inline)]
    pub currency: CurrencyCode,
}

impl NewTopUp {
    /// The pending top-up of `account_id`, asked at `now`, or every error.
    pub fn validate(self, account_id: &str, now: DateTime<Utc>) -> Result<TopUp, Vec<FieldError>> {
        let currency = self.currency.0;
        if let Some(e) = super::credits::places("amount", self.amount.0, currency) {
            return Err(vec![e]);
        }
        TopUp::new(
            &self.top_up_id.0,
            account_id,
            Money::new(self.amount.0, currency),
            now,
        )
        .map_err(|e| vec![FieldError::new("amount", "invalid_value", e.to_string())])
    }
}
