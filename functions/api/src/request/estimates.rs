//! Requests of the quote, estimate, forecast and budget routes.

use super::types::{
    Amount, CurrencyCode, Dimensions, ForecastDays, ForecastGranularity, JobGpus, JobSeconds, Quantity,
    RefId, Thresholds, Time,
};
use crate::limits::{DEFAULT_FORECAST_DAYS, MAX_REF_ID_LEN};
use meterline_shared::domain::estimate::{Budget, JobSpec, DEFAULT_THRESHOLDS};
use meterline_shared::domain::forecast::ForecastOptions;
use meterline_shared::domain::usage::{FieldError, Granularity};
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

/// A job to quote. Quantities are decimal strings: at most 12 fractional digits, at most 10^15.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JobInput {
    #[schema(inline)]
    pub provider_id: RefId,
    /// When the job starts: inside the account's open billing period.
    #[schema(inline)]
    pub start: Time,
    #[schema(inline)]
    pub duration_seconds: JobSeconds,
    #[serde(default)]
    #[schema(inline)]
    pub gpus: Option<JobGpus>,
    /// 1 to 128 characters.
    #[serde(default)]
    #[schema(min_length = 1, max_length = 128, example = "H100")]
    pub gpu_model: Option<String>,
    #[serde(default)]
    #[schema(inline)]
    pub vcpus: Option<Quantity>,
    #[serde(default)]
    #[schema(inline)]
    pub memory_gib: Option<Quantity>,
    #[serde(default)]
    #[schema(inline)]
    pub storage_gib: Option<Quantity>,
    #[serde(default)]
    #[schema(inline)]
    pub egress_gib: Option<Quantity>,
    /// As usage event dimensions.
    #[serde(default)]
    #[schema(inline)]
    pub dimensions: Option<Dimensions>,
    /// The dimensions that select a spot price.
    #[serde(default)]
    #[schema(inline)]
    pub spot_dimensions: Option<Dimensions>,
}

/// The body of `POST /v1/estimates/job`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"account_id": "acct_1", "job": {"provider_id": "prov_1",
    "start": "2030-01-05T09:00:00Z", "duration_seconds": 3600, "gpus": 8, "gpu_model": "H100", "vcpus": "32"}}))]
pub struct QuoteRequest {
    /// A customer key may quote its own account only.
    #[schema(inline)]
    pub account_id: RefId,
    pub job: JobInput,
}

impl QuoteRequest {
    /// The account and the job, or every error (`job.<field>`).
    pub fn validate(self) -> Result<(String, JobSpec), Vec<FieldError>> {
        let j = self.job;
        if j.gpu_model
            .as_ref()
            .is_some_and(|s| s.is_empty() || s.chars().count() > MAX_REF_ID_LEN)
        {
            return Err(vec![FieldError::new(
                "job.gpu_model",
                "invalid_format",
                format!("must be a string of 1 to {MAX_REF_ID_LEN} characters"),
            )]);
        }
        let q = |v: Option<Quantity>| v.map_or(Decimal::ZERO, |q| q.0);
        let spec = JobSpec {
            provider_id: j.provider_id.0,
            start: j.start.0,
            duration_seconds: j.duration_seconds.0,
            gpus: j.gpus.map_or(0, |g| g.0 as u32),
            gpu_model: j.gpu_model,
            vcpus: q(j.vcpus),
            memory_gib: q(j.memory_gib),
            storage_gib: q(j.storage_gib),
            egress_gib: q(j.egress_gib),
            dimensions: j.dimensions.unwrap_or_default().0,
            spot_dimensions: j.spot_dimensions.unwrap_or_default().0,
        };
        Ok((self.account_id.0, spec))
    }
}

/// `granularity` of an estimate.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct EstimateQuery {
    /// `hour` (default) or `day`.
    #[param(inline)]
    pub granularity: Option<ForecastGranularity>,
}

fn options(g: Option<ForecastGranularity>) -> ForecastOptions {
    match g.map(|g| g.0) {
        Some(Granularity::Day) => ForecastOptions::daily(),
        _ => ForecastOptions::hourly(),
    }
}

impl EstimateQuery {
    pub fn options(&self) -> ForecastOptions {
        options(self.granularity)
    }
}

/// `days` and `granularity` of a forecast.
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ForecastQuery {
    /// Days ahead, 1 to 90 (default 7).
    #[param(inline)]
    pub days: Option<ForecastDays>,
    /// `hour` (default) or `day`.
    #[param(inline)]
    pub granularity: Option<ForecastGranularity>,
}

impl ForecastQuery {
    pub fn days(&self) -> u32 {
        self.days.map_or(DEFAULT_FORECAST_DAYS, |d| d.0 as u32)
    }

    pub fn options(&self) -> ForecastOptions {
        options(self.granularity)
    }
}

/// A budget to create (`budget_id` required) or replace (`budget_id` from the path).
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"budget_id": "monthly", "amount": "250.00", "currency": "USD", "thresholds": [50, 80, 100]}))]
pub struct BudgetBody {
    /// Required to create; to replace, the path's budget or absent.
    #[serde(default)]
    #[schema(inline)]
    pub budget_id: Option<RefId>,
    /// Positive, at most 10^15, at most the currency's minor units.
    #[schema(inline)]
    pub amount: Amount,
    #[schema(inline)]
    pub currency: CurrencyCode,
    /// Default 50, 80, 100.
    #[serde(default)]
    #[schema(inline)]
    pub thresholds: Option<Thresholds>,
    /// The path's account, or absent.
    #[serde(default)]
    #[schema(inline)]
    pub account_id: Option<RefId>,
}

impl BudgetBody {
    /// The budget of `account_id`; the id from the path (`path_id`) or the body; every error.
    pub fn validate(self, account_id: &str, path_id: Option<&str>) -> Result<Budget, Vec<FieldError>> {
        let mut errors = Vec::new();
        if self.account_id.as_ref().is_some_and(|a| a.0 != account_id) {
            errors.push(FieldError::new(
                "account_id",
                "mismatch",
                "must be the account of the path, or absent",
            ));
        }
        let budget_id = match (path_id, self.budget_id) {
            (Some(p), None) => Some(p.to_string()),
            (Some(p), Some(b)) if b.0 == p => Some(b.0),
            (Some(_), Some(_)) => {
                errors.push(FieldError::new(
                    "budget_id",
                    "mismatch",
                    "must be the budget of the path, or absent",
                ));
                None
            }
            (None, Some(b)) => Some(b.0),
            (None, None) => {
                errors.push(FieldError::new("budget_id", "required", "is required"));
                None
            }
        };
        let currency = self.currency.0;
        let amount = self.amount.0;
        if amount.normalize().scale() > currency.minor_units() {
            errors.push(FieldError::new(
                "amount",
                "too_precise",
                format!("has more than {} decimal places", currency.minor_units()),
            ));
        }
        let thresholds = match self.thresholds {
            None => DEFAULT_THRESHOLDS.to_vec(),
            Some(t) => {
                let mut t = t.0;
                t.sort_unstable();
                t.dedup();
                t
            }
        };
        match budget_id {
            Some(budget_id) if errors.is_empty() => Ok(Budget {
                account_id: account_id.to_string(),
                budget_id,
                amount,
                currency,
                thresholds,
            }),
            _ => Err(errors),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse_body;
    use super::*;
    use serde_json::json;

    fn budget_fields(body: serde_json::Value) -> Vec<String> {
        let parsed = parse_body::<BudgetBody>(body.to_string().as_bytes());
        let p = parsed.validate("body", |b| b.validate("a1", None));
        p.map(|_| Vec::new())
            .unwrap_or_else(|p| p.errors.into_iter().map(|e| e.field).collect())
    }

    #[test]
    fn budget_problems_name_each_field() {
        let fields = budget_fields(
            json!({"budget_id": "b 1", "amount": "10.001", "currency": "USD", "thresholds": [0]}),
        );
        assert_eq!(fields, ["budget_id", "amount", "thresholds"]);
        let b = parse_body::<BudgetBody>(br#"{"budget_id": "b1", "amount": "100", "currency": "EUR"}"#)
            .validate("body", |b| b.validate("a1", None))
            .unwrap();
        assert_eq!(b.thresholds, [50, 80, 100]);
        assert_eq!(b.amount, Decimal::from(100));
    }

    #[test]
    fn job_problems_name_each_field() {
        let body = json!({"account_id": "a1", "job": {"provider_id": "", "duration_seconds": 0, "vcpus": "-1", "x": 1}});
        let fields: Vec<String> = parse_body::<QuoteRequest>(body.to_string().as_bytes())
            .errors
            .into_iter()
            .map(|e| e.field)
            .collect();
        assert_eq!(fields[0], "job.x");
        let ok = parse_body::<QuoteRequest>(
            json!({"account_id": "a1", "job": {"provider_id": "gpu-co", "start": "2026-01-05T09:00:00Z",
                "duration_seconds": 7200, "gpus": 8, "gpu_model": "H100", "vcpus": "32", "memory_gib": "256"}})
            .to_string()
            .as_bytes(),
        )
        .validate("body", QuoteRequest::validate)
        .unwrap();
        assert_eq!(ok.1.vcpus, Decimal::from(32));
    }
}
