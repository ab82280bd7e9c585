//! Estimate, forecast and budget routes:
//!
//! - `POST /v1/estimates/job`: a job's marginal price under each pricing model the account could
//!   use (`estimate::quote_job`), body `{"account_id": "...", "job": {JobSpec}}`.
//! - `GET /v1/accounts/{id}/estimate?granularity=`: the open period to date and its projection to
//!   the period's end with 80 % / 95 % bands.
//! - `GET /v1/accounts/{id}/forecast?days=&granularity=`: the next `days` (1 to 90, default 7).
//! - `GET /v1/accounts/{id}/budgets`, `POST /v1/accounts/{id}/budgets` (create, 201),
//!   `GET|POST|DELETE /v1/accounts/{id}/budgets/{budget_id}` (read, replace, delete).
//!
//! The open period is loaded and rated by `meterline_shared::services::account_estimate`, through the
//! rating context the close builds, so the period to date is what the invoice will say.

use super::{json_response, store_problem};
use crate::request::estimates::{BudgetBody, EstimateQuery, ForecastQuery, QuoteRequest};
use crate::request::types::RefId;
use crate::routes::{Ctx, Outcome};
use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Body, Response};
use meterline_shared::adapters::http::problem::Problem;
use meterline_shared::domain::access::keys::Principal;
use meterline_shared::domain::estimate::{quote_job, Budget, JobSpec, Quote, QuoteContext, QuoteError};
use meterline_shared::domain::fx::CurrencyPair;
use meterline_shared::ports::billing::BillingStore;
use meterline_shared::ports::budgets::BudgetStore;
use meterline_shared::ports::rates::RateStore;
use meterline_shared::ports::usage::UsageStore;
use meterline_shared::services::account_estimate::{AccountEstimator, EstimateFailure};
use serde_json::{json, Value};
use std::sync::Arc;

/// Largest `days` of a forecast.
pub const MAX_FORECAST_DAYS: u32 = 90;
/// `days` when the request has none.
pub const DEFAULT_FORECAST_DAYS: u32 = 7;
/// Thresholds a budget may have.
pub const MAX_THRESHOLDS: usize = 10;
/// Budgets an account may have.
pub const MAX_BUDGETS: usize = 20;

/// The estimate routes' dependencies. Budgets live in the billing table.
pub struct EstimatesApi {
    pub billing: Arc<dyn BillingStore>,
    /// Budgets (in AWS, the billing table again).
    pub budgets: Arc<dyn BudgetStore>,
    pub usage: Arc<dyn UsageStore>,
    /// For quotes of accounts billed in another currency than the books'.
    pub rates: Arc<dyn RateStore>,
}

fn failure_problem(e: EstimateFailure) -> Problem {
    match e {
        EstimateFailure::Store(s) => store_problem(&s),
        EstimateFailure::UnknownAccount(a) => Problem::not_found(format!("no account {a}")),
        e @ EstimateFailure::NoOpenPeriod(..) => Problem::not_found(e.to_string()),
        e => {
            tracing::error!(error = %e, "estimate failed");
            Problem::new(500, "estimate-failed", "Estimate failed", e.to_string())
        }
    }
}

fn budget_json(b: &Budget) -> Value {
    json!({
        "account_id": b.account_id,
        "budget_id": b.budget_id,
        "amount": b.amount.to_string(),
        "currency": b.currency.code(),
        "thresholds": b.thresholds,
    })
}

impl EstimatesApi {
    fn estimator(&self) -> AccountEstimator<'_> {
        AccountEstimator {
            billing: self.billing.as_ref(),
            usage: self.usage.as_ref(),
        }
    }

    async fn quote(
        &self,
        account_id: String,
        spec: JobSpec,
        now: DateTime<Utc>,
    ) -> Result<Response<Body>, Problem> {
        let q = self.quote_of(&account_id, &spec, now).await?;
        Ok(json_response(
            StatusCode::OK,
            json!({"account_id": account_id, "quote": q}),
        ))
    }

    /// The quote of `spec` for `account_id`, or the problem that refuses it (fields named
    /// `job.<field>`).
    pub(crate) async fn quote_of(
        &self,
        account_id: &str,
        spec: &JobSpec,
        now: DateTime<Utc>,
    ) -> Result<Quote, Problem> {
        let loaded = self
            .estimator()
            .load(account_id, spec.start, None)
            .await
            .map_err(|e| match e {
                e @ EstimateFailure::NoOpenPeriod(..) => {
                    Problem::invalid_field("job.start", "outside_subscription", e.to_string())
                }
                e => failure_problem(e),
            })?;
        let books = loaded.catalog.currency();
        let account_currency = loaded.account.currency;
        let fx = if books == account_currency {
            None
        } else {
            let direct = self
                .rates
                .latest(CurrencyPair::new(books, account_currency))
                .await
                .map_err(|e| Problem::new(503, "unavailable", "Service unavailable", e.to_string()))?;
            match direct {
                Some(r) => Some(r),
                None => self
                    .rates
                    .latest(CurrencyPair::new(account_currency, books))
                    .await
                    .map_err(|e| Problem::new(503, "unavailable", "Service unavailable", e.to_string()))?,
            }
        };
        // The plan in force when the job starts (the one the close rates its usage under: after
        // a change of plan inside the period, not the plan the period started with), and the
        // usage known now that the close rates with it, as the quote's starting point.
        let quote = loaded.with_context_at(spec.start, |ctx, rows| {
            let so_far: Vec<_> = rows.into_iter().filter(|r| r.window_start < now).collect();
            quote_job(
                &QuoteContext {
                    rating: *ctx,
                    period: loaded.rating_period(),
                    usage_so_far: &so_far,
                    account_currency,
                    fx: fx.as_ref(),
                },
                spec,
            )
        });
        match quote {
            Ok(q) => Ok(q),
            Err(QuoteError::NoUsage) => Err(Problem::invalid_field(
                "job",
                "no_usage",
                "every resource is zero: give gpus, vcpus, memory_gib, storage_gib or egress_gib",
            )),
            Err(e @ QuoteError::OutsidePeriod { .. }) => Err(Problem::invalid_field(
                "job.start",
                "outside_period",
                e.to_string(),
            )),
            Err(e @ QuoteError::NoExchangeRate { .. }) => Err(Problem::new(
                503,
                "no-exchange-rate",
                "No exchange rate",
                e.to_string(),
            )),
            Err(e) => Err(Problem::new(
                422,
                "unpriceable",
                "The job cannot be priced",
                e.to_string(),
            )),
        }
    }

    async fn estimate(&self, query: &EstimateQuery, account_id: &str, now: DateTime<Utc>) -> Outcome {
        let e = self
            .estimator()
            .estimate(account_id, now, &query.options())
            .await
            .map_err(failure_problem)?;
        crate::json_of(StatusCode::OK, &e)
    }

    async fn forecast(&self, query: &ForecastQuery, account_id: &str, now: DateTime<Utc>) -> Outcome {
        let (days, opts) = (query.days(), query.options());
        let f = self
            .estimator()
            .forecast_days(account_id, now, days, &opts)
            .await
            .map_err(failure_problem)?;
        Ok(json_response(
            StatusCode::OK,
            json!({"account_id": account_id, "days": days, "forecast": f}),
        ))
    }

    pub(crate) async fn require_account(&self, account_id: &str) -> Result<(), Problem> {
        match self.billing.account(account_id).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Problem::not_found(format!("no account {account_id}"))),
            Err(e) => Err(store_problem(&e)),
        }
    }

    async fn list_budgets(&self, account_id: &str) -> Result<Response<Body>, Problem> {
        self.require_account(account_id).await?;
        let list = self
            .budgets
            .budgets(account_id)
            .await
            .map_err(|e| store_problem(&e))?;
        Ok(json_response(
            StatusCode::OK,
            json!({"data": list.iter().map(budget_json).collect::<Vec<_>>()}),
        ))
    }

    async fn put_budget(&self, budget: Budget, replace: bool) -> Outcome {
        let account_id = budget.account_id.as_str();
        self.require_account(account_id).await?;
        let existing = self
            .budgets
            .budgets(account_id)
            .await
            .map_err(|e| store_problem(&e))?;
        let exists = existing.iter().any(|b| b.budget_id == budget.budget_id);
        if !replace && exists {
            return Err(Problem::new(
                409,
                "conflict",
                "Budget exists",
                format!(
                    "budget {} exists; POST to /v1/accounts/{account_id}/budgets/{} to replace it",
                    budget.budget_id, budget.budget_id
                ),
            ));
        }
        if replace && !exists {
            return Err(Problem::not_found(format!("no budget {}", budget.budget_id)));
        }
        if !exists && existing.len() >= MAX_BUDGETS {
            return Err(Problem::new(
                409,
                "too-many-budgets",
                "Too many budgets",
                format!("an account has at most {MAX_BUDGETS} budgets"),
            ));
        }
        self.budgets
            .put_budget(&budget)
            .await
            .map_err(|e| store_problem(&e))?;
        let status = if exists {
            StatusCode::OK
        } else {
            StatusCode::CREATED
        };
        Ok(json_response(status, budget_json(&budget)))
    }

    async fn get_budget(&self, account_id: &str, budget_id: &str) -> Result<Response<Body>, Problem> {
        match self.budgets.budget(account_id, budget_id).await {
            Ok(Some(b)) => Ok(json_response(StatusCode::OK, budget_json(&b))),
            Ok(None) => Err(Problem::not_found(format!("no budget {budget_id}"))),
            Err(e) => Err(store_problem(&e)),
        }
    }

    async fn delete_budget(&self, account_id: &str, budget_id: &str) -> Result<Response<Body>, Problem> {
        match self.budgets.delete_budget(account_id, budget_id).await {
            Ok(true) => Ok(crate::response(StatusCode::NO_CONTENT, &[], Body::Empty)),
            Ok(false) => Err(Problem::not_found(format!("no budget {budget_id}"))),
            Err(e) => Err(store_problem(&e)),
        }
    }
}

impl crate::Api {
    pub(crate) fn estimates_api(&self) -> Result<&EstimatesApi, Problem> {
        self.estimates.as_ref().ok_or_else(|| {
            Problem::new(
                503,
                "unavailable",
                "Service unavailable",
                "estimates are not configured on this deployment",
            )
        })
    }

    /// `GET /v1/accounts/{account_id}/estimate`
    pub(crate) async fn get_estimate(&self, c: &Ctx) -> Outcome {
        let account: RefId = c.path("account_id")?;
        let query = c.query_ok::<EstimateQuery>()?;
        self.estimates_api()?.estimate(&query, &account.0, c.now).await
    }

    /// `GET /v1/accounts/{account_id}/forecast`
    pub(crate) async fn get_forecast(&self, c: &Ctx) -> Outcome {
        let account: RefId = c.path("account_id")?;
        let query = c.query_ok::<ForecastQuery>()?;
        self.estimates_api()?.forecast(&query, &account.0, c.now).await
    }

    /// `GET /v1/accounts/{account_id}/budgets`
    pub(crate) async fn list_budgets(&self, c: &Ctx) -> Outcome {
        let account: RefId = c.path("account_id")?;
        self.estimates_api()?.list_budgets(&account.0).await
    }

    /// The budget of a create (`replace` false) or replace body.
    fn budget_of(c: &Ctx, replace: bool) -> Result<Budget, Problem> {
        let account: RefId = c.path("account_id")?;
        let path_id = if replace {
            Some(c.path::<RefId>("budget_id")?.0)
        } else {
            None
        };
        c.body::<BudgetBody>()?
            .validate("body", |b| b.validate(&account.0, path_id.as_deref()))
    }

    /// `POST /v1/accounts/{account_id}/budgets`
    pub(crate) async fn create_budget(&self, c: &Ctx) -> Outcome {
        let budget = Self::budget_of(c, false)?;
        self.estimates_api()?.put_budget(budget, false).await
    }

    /// `POST /v1/accounts/{account_id}/budgets/{budget_id}`
    pub(crate) async fn replace_budget(&self, c: &Ctx) -> Outcome {
        let budget = Self::budget_of(c, true)?;
        self.estimates_api()?.put_budget(budget, true).await
    }

    /// `GET /v1/accounts/{account_id}/budgets/{budget_id}`
    pub(crate) async fn get_budget(&self, c: &Ctx) -> Outcome {
        let account: RefId = c.path("account_id")?;
        let budget: RefId = c.path("budget_id")?;
        self.estimates_api()?.get_budget(&account.0, &budget.0).await
    }

    /// `DELETE /v1/accounts/{account_id}/budgets/{budget_id}`
    pub(crate) async fn delete_budget(&self, c: &Ctx) -> Outcome {
        let account: RefId = c.path("account_id")?;
        let budget: RefId = c.path("budget_id")?;
        self.estimates_api()?.delete_budget(&account.0, &budget.0).await
    }

    /// `POST /v1/estimates/job`: any key, but a customer key quotes its own account only (404
    /// for another's, as everywhere) and a provider key none.
    pub(crate) async fn quote_job(&self, c: &Ctx) -> Outcome {
        let (account_id, spec) = c
            .body::<QuoteRequest>()?
            .validate("body", QuoteRequest::validate)?;
        let allowed = match &c.principal {
            None | Some(Principal::Operator { .. }) => true,
            Some(Principal::Customer { account_id: own, .. }) => *own == account_id,
            Some(Principal::Provider { .. }) => false,
        };
        if !allowed {
            return Err(Problem::not_found("no such account"));
        }
        self.estimates_api()?.quote(account_id, spec, c.now).await
    }
}
