//! Requests of the credit routes: a grant, a job authorization (a hold), its capture, and the
//! ledger's page.

use super::estimates::{JobInput, QuoteRequest};
use super::types::{
    Amount, ChargeAmount, CurrencyCode, Cursor, GrantKindName, GrantPriority, HoldSeconds, LedgerPage,
    MeterName, RefId, Time,
};
use chrono::{DateTime, Duration, Utc};
use meterline_shared::domain::credits::{ChargeScope, CreditGrant, GrantScope, GrantSource, SpendLimits};
use meterline_shared::domain::estimate::JobSpec;
use meterline_shared::domain::money::{Currency, Money};
use meterline_shared::domain::usage::FieldError;
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// Longest operator note on a grant.
pub const MAX_NOTE_CHARS: usize = 500;

/// An error naming `field` when `amount` has more places than `currency` allows.
pub fn places(field: &str, amount: Decimal, currency: Currency) -> Option<FieldError> {
    (amount.normalize().scale() > currency.minor_units()).then(|| {
        FieldError::new(
            field,
            "too_precise",
            format!("has more than {} decimal places", currency.minor_units()),
        )
    })
}

/// A grant of credit by an operator.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"grant_id": "welcome", "amount": "50.00", "currency": "USD", "kind": "promotional",
    "expires_at": "2030-01-01T00:00:00Z", "note": "welcome credit"}))]
pub struct NewGrant {
    /// The grant's id: granting the same id again with the same grant changes nothing.
    #[schema(inline)]
    pub grant_id: RefId,
    /// More than zero, in the currency's minor units at most.
    #[schema(inline)]
    pub amount: Amount,
    #[schema(inline)]
    pub currency: CurrencyCode,
    /// `paid` or `promotional` (default).
    #[serde(default)]
    #[schema(inline)]
    pub kind: Option<GrantKindName>,
    /// Lower is consumed first (default 0).
    #[serde(default)]
    #[schema(inline)]
    pub priority: Option<GrantPriority>,
    /// From when it may be spent (default: now).
    #[serde(default)]
    #[schema(inline)]
    pub effective_at: Option<Time>,
    /// From when it may no longer be spent; its remainder is forfeited then (default: never).
    #[serde(default)]
    #[schema(inline)]
    pub expires_at: Option<Time>,
    /// The meters it may pay for (default: any).
    #[serde(default)]
    #[schema(max_items = 16)]
    pub meters: Option<Vec<MeterName>>,
    /// The providers it may pay for (default: any).
    #[serde(default)]
    #[schema(max_items = 100)]
    pub providers: Option<Vec<RefId>>,
    /// Why it was given, up to 500 characters.
    #[serde(default)]
    #[schema(max_length = 500)]
    pub note: Option<String>,
}

impl NewGrant {
    /// The grant to `account_id`, made at `now`, or every error.
    pub fn validate(self, account_id: &str, now: DateTime<Utc>) -> Result<CreditGrant, Vec<FieldError>> {
        let mut errors = Vec::new();
        let currency = self.currency.0;
        errors.extend(places("amount", self.amount.0, currency));
        let effective_at = self.effective_at.map_or(now, |t| t.0);
        let expires_at = self.expires_at.map(|t| t.0);
        if expires_at.is_some_and(|e| e <= effective_at) {
            errors.push(FieldError::new(
                "expires_at",
                "out_of_range",
                "must be after effective_at",
            ));
        }
        let note = self.note.unwrap_or_default();
        if note.chars().count() > MAX_NOTE_CHARS {
            errors.push(FieldError::new(
                "note",
                "too_long",
                format!("must be at most {MAX_NOTE_CHARS} characters"),
            ));
        }
        if self.providers.as_ref().is_some_and(|p| p.len() > 100) {
            errors.push(FieldError::new(
                "providers",
                "too_many",
                "must name at most 100 providers",
            ));
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(CreditGrant {
            id: self.grant_id.0,
            account_id: account_id.to_string(),
            amount: Money::new(self.amount.0, currency),
            kind: self
                .kind
                .map_or(meterline_shared::domain::credits::GrantKind::Promotional, |k| k.0),
            priority: self.priority.map_or(0, |p| p.0 as u32),
            effective_at,
            expires_at,
            scope: GrantScope {
                meters: self.meters.unwrap_or_default().into_iter().map(|m| m.0).collect(),
                providers: self
                    .providers
                    .unwrap_or_default()
                    .into_iter()
                    .map(|p| p.0)
                    .collect(),
            },
            source: GrantSource::Operator { note },
        })
    }
}

/// A job to authorize: priced by the quote engine for its whole duration (`job`, as
/// `POST /v1/estimates/job` takes it), or an amount given directly (`max_amount`, in `currency`
/// or the account's).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"hold_id": "hold_1", "job_id": "job_1", "max_amount": "10.00", "currency": "USD"}))]
pub struct NewAuthorization {
    /// The hold's id: authorizing the same id again with the same job changes nothing.
    #[schema(inline)]
    pub hold_id: RefId,
    /// The job the hold is for.
    #[schema(inline)]
    pub job_id: RefId,
    /// The job at its maximum duration; or give `max_amount`.
    #[serde(default)]
    pub job: Option<JobInput>,
    /// The most the job may cost; or give `job`.
    #[serde(default)]
    #[schema(inline)]
    pub max_amount: Option<Amount>,
    /// With `max_amount`: its currency (default: the account's).
    #[serde(default)]
    #[schema(inline)]
    pub currency: Option<CurrencyCode>,
    /// With `max_amount`: the provider the job runs on.
    #[serde(default)]
    #[schema(inline)]
    pub provider_id: Option<RefId>,
    /// With `max_amount`: the meters the job uses.
    #[serde(default)]
    #[schema(max_items = 16)]
    pub meters: Option<Vec<MeterName>>,
    /// How long the hold stays open, 60 seconds to 30 days (default: the job's duration and
    /// an hour, or a day for `max_amount`).
    #[serde(default)]
    #[schema(inline)]
    pub expires_in_seconds: Option<HoldSeconds>,
}

/// What an authorization holds: a job to quote, or an amount.
#[derive(Debug, Clone, PartialEq)]
pub enum HoldPrice {
    Job(JobSpec),
    /// The amount, in `currency` or (`None`) the account's.
    Amount {
        amount: Decimal,
        currency: Option<Currency>,
        scope: ChargeScope,
    },
}

/// A checked [`NewAuthorization`].
#[derive(Debug, Clone, PartialEq)]
pub struct AuthorizationAsk {
    pub hold_id: String,
    pub job_id: String,
    pub price: HoldPrice,
    pub expires_at: DateTime<Utc>,
}

/// The hold of a job lasts its duration and this much more unless the request says.
const JOB_GRACE_SECONDS: u64 = 3600;
/// A hold for an amount lasts this long unless the request says.
const AMOUNT_HOLD_SECONDS: u64 = 86_400;

impl NewAuthorization {
    /// The authorization of `account_id` asked at `now`, or every error.
    pub fn validate(self, account_id: &str, now: DateTime<Utc>) -> Result<AuthorizationAsk, Vec<FieldError>> {
        let mut errors = Vec::new();
        let by_amount = self.currency.is_some() || self.provider_id.is_some() || self.meters.is_some();
        let price = match (self.job, self.max_amount) {
            (Some(job), None) if !by_amount => {
                let quote = QuoteRequest {
                    account_id: RefId(account_id.to_string()),
                    job,
                };
                match quote.validate() {
                    Ok((_, spec)) => Some(HoldPrice::Job(spec)),
                    Err(e) => {
                        errors.extend(e);
                        None
                    }
                }
            }
            (None, Some(amount)) => {
                let currency = self.currency.map(|c| c.0);
                if let Some(c) = currency {
                    errors.extend(places("max_amount", amount.0, c));
                }
                let scope = ChargeScope {
                    provider: self.provider_id.map(|p| p.0),
                    meters: self.meters.unwrap_or_default().into_iter().map(|m| m.0).collect(),
                };
                Some(HoldPrice::Amount {
                    amount: amount.0,
                    currency,
                    scope,
                })
            }
            (Some(_), _) => {
                errors.push(FieldError::new(
                    "job",
                    "conflict",
                    "give either job, or max_amount with currency, provider_id and meters",
                ));
                None
            }
            (None, None) => {
                errors.push(FieldError::new("job", "required", "give job or max_amount"));
                None
            }
        };
        let seconds = match (&price, self.expires_in_seconds) {
            (_, Some(s)) => s.0,
            (Some(HoldPrice::Job(spec)), None) => {
                let end = spec.start + Duration::seconds(spec.duration_seconds as i64);
                let until_end = (end - now).num_seconds().max(0) as u64;
                until_end.saturating_add(JOB_GRACE_SECONDS)
            }
            _ => AMOUNT_HOLD_SECONDS,
        };
        match price {
            Some(price) if errors.is_empty() => Ok(AuthorizationAsk {
                hold_id: self.hold_id.0,
                job_id: self.job_id.0,
                price,
                expires_at: now + Duration::seconds(seconds as i64),
            }),
            _ => Err(errors),
        }
    }
}

/// A job's end: charge what its usage says and release the rest.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"amount": "0.50"}))]
pub struct NewCapture {
    /// What the job's usage costs, in the hold's currency (0 releases it all).
    #[schema(inline)]
    pub amount: ChargeAmount,
    /// Charge more than the hold holds, the excess from the free balance (default false:
    /// such a capture is refused).
    #[serde(default)]
    pub beyond_hold: Option<bool>,
    /// The capture's id (default: the hold's): a repeat of the capture changes nothing.
    #[serde(default)]
    #[schema(inline)]
    pub capture_id: Option<RefId>,
}

/// A page of the credit ledger.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct LedgerQuery {
    #[param(inline)]
    pub limit: Option<LedgerPage>,
    #[param(inline)]
    pub cursor: Option<Cursor>,
}

/// An account's spend limits on what one billing period draws: they replace any set before.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"currency": "USD", "soft": "500.00", "hard": "1000.00"}))]
pub struct NewSpendLimits {
    /// The price books' currency, in which the spend is counted.
    #[schema(inline)]
    pub currency: CurrencyCode,
    /// Reaching it announces `SpendThresholdReached`; below `hard` when both are set.
    #[serde(default)]
    #[schema(inline)]
    pub soft: Option<Amount>,
    /// Reaching it announces `SpendLimitReached` (`hard_limit`).
    #[serde(default)]
    #[schema(inline)]
    pub hard: Option<Amount>,
}

impl NewSpendLimits {
    /// The limits of `account_id`, or every error.
    pub fn validate(self, account_id: &str) -> Result<SpendLimits, Vec<FieldError>> {
        let currency = self.currency.0;
        let (soft, hard) = (self.soft.map(|a| a.0), self.hard.map(|a| a.0));
        let mut errors: Vec<FieldError> = [("soft", soft), ("hard", hard)]
            .into_iter()
            .filter_map(|(field, v)| v.and_then(|v| places(field, v, currency)))
            .collect();
        if let (Some(s), Some(h)) = (soft, hard) {
            if s >= h {
                errors.push(FieldError::new("soft", "out_of_range", "must be below hard"));
            }
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(SpendLimits {
            account_id: account_id.to_string(),
            currency,
            soft,
            hard,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_body;
    use super::*;
    use serde_json::json;

    fn now() -> DateTime<Utc> {
        "2030-01-05T08:00:00Z".parse().unwrap()
    }

    fn grant_fields(body: serde_json::Value) -> Vec<String> {
        parse_body::<NewGrant>(body.to_string().as_bytes())
            .validate("body", |g| g.validate("acct_1", now()))
            .map(|_| Vec::new())
            .unwrap_or_else(|p| p.errors.into_iter().map(|e| e.field).collect())
    }

    #[test]
    fn grant_problems_name_each_field() {
        let fields = grant_fields(json!({"grant_id": "g 1", "amount": "0", "currency": "USD",
            "kind": "free", "meters": ["gpu_seconds", "bogus"]}));
        assert_eq!(fields, ["grant_id", "amount", "kind", "meters[1]"]);
        assert_eq!(
            grant_fields(json!({"grant_id": "g1", "amount": "10", "currency": "JPY",
                "effective_at": "2030-02-01T00:00:00Z", "expires_at": "2030-01-01T00:00:00Z"})),
            ["expires_at"]
        );
        let g = parse_body::<NewGrant>(
            br#"{"grant_id": "g1", "amount": "10.50", "currency": "USD", "kind": "paid"}"#,
        )
        .validate("body", |g| g.validate("acct_1", now()))
        .unwrap();
        assert_eq!(
            (g.amount.amount, g.effective_at, g.expires_at),
            (Decimal::new(1050, 2), now(), None)
        );
    }

    #[test]
    fn an_authorization_is_a_job_or_an_amount() {
        let job = json!({"hold_id": "h1", "job_id": "j1", "job": {"provider_id": "p1",
            "start": "2030-01-05T09:00:00Z", "duration_seconds": 3600, "gpus": 1}});
        let ask = parse_body::<NewAuthorization>(job.to_string().as_bytes())
            .validate("body", |a| a.validate("acct_1", now()))
            .unwrap();
        assert!(matches!(ask.price, HoldPrice::Job(_)));
        // The job ends two hours from now: the hold lasts that and an hour.
        assert_eq!(ask.expires_at, now() + Duration::hours(3));
        let both = json!({"hold_id": "h1", "job_id": "j1", "max_amount": "5", "currency": "USD",
            "job": {"provider_id": "p1", "start": "2030-01-05T09:00:00Z", "duration_seconds": 60}});
        let fields: Vec<String> = parse_body::<NewAuthorization>(both.to_string().as_bytes())
            .validate("body", |a| a.validate("acct_1", now()))
            .unwrap_err()
            .errors
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields, ["job"]);
        let amount = json!({"hold_id": "h1", "job_id": "j1", "max_amount": "5.5", "currency": "JPY"});
        let err = parse_body::<NewAuthorization>(amount.to_string().as_bytes())
            .validate("body", |a| a.validate("acct_1", now()))
            .unwrap_err();
        assert_eq!(err.errors[0].field, "max_amount");
        // Without a currency, the account's (the route reads it).
        let plain = json!({"hold_id": "h1", "job_id": "j1", "max_amount": "5.5"});
        let ask = parse_body::<NewAuthorization>(plain.to_string().as_bytes())
            .validate("body", |a| a.validate("acct_1", now()))
            .unwrap();
        assert!(matches!(ask.price, HoldPrice::Amount { currency: None, .. }));
    }
}
