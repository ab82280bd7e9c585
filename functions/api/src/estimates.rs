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

use super::{account_param, body_bytes, json_response, store_problem, MAX_BODY_BYTES};
use chrono::{DateTime, Utc};
use lambda_http::http::{Method, StatusCode};
use lambda_http::{Body, Request, RequestExt, Response};
use meterline_shared::adapters::http::problem::Problem;
use meterline_shared::domain::estimate::{quote_job, Budget, JobSpec, QuoteContext, QuoteError};
use meterline_shared::domain::forecast::ForecastOptions;
use meterline_shared::domain::fx::CurrencyPair;
use meterline_shared::domain::money::Currency;
use meterline_shared::domain::usage::event::is_valid_ref_id;
use meterline_shared::domain::usage::FieldError;
use meterline_shared::ports::billing::BillingStore;
use meterline_shared::ports::budgets::BudgetStore;
use meterline_shared::ports::rates::RateStore;
use meterline_shared::ports::usage::UsageStore;
use meterline_shared::services::account_estimate::{AccountEstimator, EstimateFailure};
use rust_decimal::Decimal;
use serde_json::{json, Map, Value};
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

fn granularity_param(
    q: &lambda_http::aws_lambda_events::query_map::QueryMap,
) -> Result<ForecastOptions, Problem> {
    match q.first("granularity") {
        None | Some("hour") => Ok(ForecastOptions::hourly()),
        Some("day") => Ok(ForecastOptions::daily()),
        Some(_) => Err(Problem::invalid_field(
            "granularity",
            "invalid_value",
            "must be `hour` or `day`",
        )),
    }
}

/// A JSON object body, at most [`MAX_BODY_BYTES`].
fn object_body(req: &Request) -> Result<Map<String, Value>, Problem> {
    let bytes = body_bytes(req.body());
    if bytes.len() > MAX_BODY_BYTES {
        return Err(crate::body_too_large(bytes.len(), MAX_BODY_BYTES));
    }
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(Problem::invalid_field(
            "body",
            "invalid_type",
            "must be a JSON object",
        )),
        Err(e) => Err(Problem::invalid_field(
            "body",
            "invalid_json",
            format!("is not JSON: {e}"),
        )),
    }
}

fn problems(errors: Vec<FieldError>) -> Problem {
    let detail = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    Problem::new(400, "invalid-body", "Invalid request body", detail).with_errors(errors)
}

use crate::limits::{
    decimal, dimensions_errors, quantity_field, MAX_AMOUNT, MAX_JOB_GPUS, MAX_JOB_SECONDS, MAX_REF_ID_LEN,
    MAX_THRESHOLD_PERCENT, REF_ID_RULE,
};

/// Checks a job body field by field, so each problem names its field (`job.<name>`).
fn validate_job(job: &Value) -> Result<JobSpec, Vec<FieldError>> {
    let Some(obj) = job.as_object() else {
        return Err(vec![FieldError::new("job", "invalid_type", "must be an object")]);
    };
    let mut errors = Vec::new();
    let known = [
        "provider_id",
        "start",
        "duration_seconds",
        "gpus",
        "gpu_model",
        "vcpus",
        "memory_gib",
        "storage_gib",
        "egress_gib",
        "dimensions",
        "spot_dimensions",
    ];
    for k in obj.keys().filter(|k| !known.contains(&k.as_str())) {
        errors.push(FieldError::new(
            format!("job.{k}"),
            "unknown_field",
            "is not a job field",
        ));
    }
    match obj.get("provider_id").and_then(Value::as_str) {
        Some(p) if is_valid_ref_id(p) => {}
        Some(_) => errors.push(FieldError::new("job.provider_id", "invalid_format", REF_ID_RULE)),
        None => errors.push(FieldError::new(
            "job.provider_id",
            "required",
            "is required (a string)",
        )),
    }
    match obj.get("start").and_then(Value::as_str) {
        Some(s) if DateTime::parse_from_rfc3339(s).is_ok() => {}
        Some(_) => errors.push(FieldError::new(
            "job.start",
            "invalid_format",
            "must be an RFC 3339 time, e.g. 2026-11-25T09:00:00Z",
        )),
        None => errors.push(FieldError::new("job.start", "required", "is required (RFC 3339)")),
    }
    match obj.get("duration_seconds") {
        Some(v) if v.as_u64().is_some_and(|d| d > 0 && d <= MAX_JOB_SECONDS) => {}
        Some(_) => errors.push(FieldError::new(
            "job.duration_seconds",
            "out_of_range",
            format!("must be a whole number of seconds from 1 to {MAX_JOB_SECONDS}"),
        )),
        None => errors.push(FieldError::new("job.duration_seconds", "required", "is required")),
    }
    if let Some(v) = obj.get("gpus") {
        if v.as_u64().is_none_or(|g| g > MAX_JOB_GPUS) {
            errors.push(FieldError::new(
                "job.gpus",
                "out_of_range",
                format!("must be a whole number from 0 to {MAX_JOB_GPUS}"),
            ));
        }
    }
    if let Some(v) = obj.get("gpu_model") {
        if !v
            .as_str()
            .is_some_and(|s| !s.is_empty() && s.chars().count() <= MAX_REF_ID_LEN)
        {
            errors.push(FieldError::new(
                "job.gpu_model",
                "invalid_format",
                format!("must be a string of 1 to {MAX_REF_ID_LEN} characters"),
            ));
        }
    }
    for k in ["vcpus", "memory_gib", "storage_gib", "egress_gib"] {
        if let Some(v) = obj.get(k) {
            if let Err(e) = quantity_field(&format!("job.{k}"), v) {
                errors.push(e);
            }
        }
    }
    for k in ["dimensions", "spot_dimensions"] {
        if let Some(v) = obj.get(k) {
            errors.extend(dimensions_errors(&format!("job.{k}"), v));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Numbers as decimal strings, so the spec reads them exactly.
    let mut normalized = obj.clone();
    for k in ["vcpus", "memory_gib", "storage_gib", "egress_gib"] {
        if let Some(d) = normalized.get(k).and_then(decimal) {
            normalized.insert(k.to_string(), Value::String(d.to_string()));
        }
    }
    serde_json::from_value(Value::Object(normalized))
        .map_err(|e| vec![FieldError::new("job", "invalid", e.to_string())])
}

/// Checks a budget body; the account comes from the path, the id from the path or the body.
fn validate_budget(
    account_id: &str,
    path_id: Option<&str>,
    body: &Map<String, Value>,
) -> Result<Budget, Problem> {
    let mut errors = Vec::new();
    for k in body
        .keys()
        .filter(|k| !["budget_id", "amount", "currency", "thresholds", "account_id"].contains(&k.as_str()))
    {
        errors.push(FieldError::new(
            k.clone(),
            "unknown_field",
            "is not a budget field",
        ));
    }
    if let Some(a) = body.get("account_id") {
        if a.as_str() != Some(account_id) {
            errors.push(FieldError::new(
                "account_id",
                "mismatch",
                "must be the account of the path, or absent",
            ));
        }
    }
    let budget_id = match (path_id, body.get("budget_id")) {
        (Some(p), None) => Some(p.to_string()),
        (Some(p), Some(b)) if b.as_str() == Some(p) => Some(p.to_string()),
        (Some(_), Some(_)) => {
            errors.push(FieldError::new(
                "budget_id",
                "mismatch",
                "must be the budget of the path, or absent",
            ));
            None
        }
        (None, Some(Value::String(b))) if is_valid_ref_id(b) => Some(b.clone()),
        (None, Some(_)) => {
            errors.push(FieldError::new("budget_id", "invalid_format", REF_ID_RULE));
            None
        }
        (None, None) => {
            errors.push(FieldError::new("budget_id", "required", "is required"));
            None
        }
    };
    let currency = match body.get("currency").and_then(Value::as_str) {
        Some(c) => match Currency::from_code(c) {
            Ok(c) => Some(c),
            Err(_) => {
                errors.push(FieldError::new(
                    "currency",
                    "unknown_currency",
                    format!("`{c}` is not a supported currency code"),
                ));
                None
            }
        },
        None => {
            errors.push(FieldError::new("currency", "required", "is required (e.g. USD)"));
            None
        }
    };
    let amount = match body.get("amount") {
        None => {
            errors.push(FieldError::new(
                "amount",
                "required",
                "is required (a decimal string)",
            ));
            None
        }
        Some(v) => match decimal(v) {
            Some(a) if a > MAX_AMOUNT => {
                errors.push(FieldError::new("amount", "too_large", "must be at most 10^15"));
                None
            }
            Some(a) if a > Decimal::ZERO => {
                if let Some(c) = currency {
                    if a.scale() > c.minor_units() && a.normalize().scale() > c.minor_units() {
                        errors.push(FieldError::new(
                            "amount",
                            "too_precise",
                            format!("has more than {} decimal places", c.minor_units()),
                        ));
                    }
                }
                Some(a.normalize())
            }
            _ => {
                errors.push(FieldError::new(
                    "amount",
                    "invalid_value",
                    "must be a positive decimal",
                ));
                None
            }
        },
    };
    let thresholds = match body.get("thresholds") {
        None => meterline_shared::domain::estimate::DEFAULT_THRESHOLDS.to_vec(),
        Some(Value::Array(a)) => {
            let t: Option<Vec<u32>> = a
                .iter()
                .map(|v| {
                    v.as_u64()
                        .filter(|p| (1..=MAX_THRESHOLD_PERCENT).contains(p))
                        .map(|p| p as u32)
                })
                .collect();
            match t {
                Some(t) if !t.is_empty() && t.len() <= MAX_THRESHOLDS => {
                    let mut t = t;
                    t.sort_unstable();
                    t.dedup();
                    t
                }
                _ => {
                    errors.push(FieldError::new(
                        "thresholds",
                        "invalid_value",
                        format!("must be 1 to {MAX_THRESHOLDS} whole percentages from 1 to {MAX_THRESHOLD_PERCENT}"),
                    ));
                    Vec::new()
                }
            }
        }
        Some(_) => {
            errors.push(FieldError::new(
                "thresholds",
                "invalid_type",
                "must be an array of percentages",
            ));
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return Err(problems(errors));
    }
    Ok(Budget {
        account_id: account_id.to_string(),
        budget_id: budget_id.expect("checked"),
        amount: amount.expect("checked"),
        currency: currency.expect("checked"),
        thresholds,
    })
}

/// The `{budget_id}` path parameter: an id like the body's (400 naming it otherwise).
fn budget_param(b: &str) -> Result<&str, Problem> {
    if is_valid_ref_id(b) {
        Ok(b)
    } else {
        Err(Problem::invalid_field("budget_id", "invalid_format", REF_ID_RULE))
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

fn not_allowed(method: &Method, path: &str) -> Problem {
    Problem::new(
        405,
        "method-not-allowed",
        "Method not allowed",
        format!("{method} is not allowed on {path}"),
    )
}

impl EstimatesApi {
    fn estimator(&self) -> AccountEstimator<'_> {
        AccountEstimator {
            billing: self.billing.as_ref(),
            usage: self.usage.as_ref(),
        }
    }

    /// Routes `/v1/{rest}` (`estimates/...` and `accounts/{id}/estimate|forecast|budgets...`).
    pub async fn route(
        &self,
        req: &Request,
        rest: &[&str],
        now: DateTime<Utc>,
    ) -> Result<Response<Body>, Problem> {
        let method = req.method().clone();
        let path = format!("/v1/{}", rest.join("/"));
        match (method.clone(), rest) {
            (Method::POST, ["estimates", "job"]) => self.quote(req, now).await,
            (Method::GET, ["accounts", a, "estimate"]) => self.estimate(req, &account_param(a)?, now).await,
            (Method::GET, ["accounts", a, "forecast"]) => self.forecast(req, &account_param(a)?, now).await,
            (Method::GET, ["accounts", a, "budgets"]) => self.list_budgets(&account_param(a)?).await,
            (Method::POST, ["accounts", a, "budgets"]) => {
                self.put_budget(req, &account_param(a)?, None).await
            }
            (Method::GET, ["accounts", a, "budgets", b]) => {
                self.get_budget(&account_param(a)?, budget_param(b)?).await
            }
            (Method::POST, ["accounts", a, "budgets", b]) => {
                self.put_budget(req, &account_param(a)?, Some(b)).await
            }
            (Method::DELETE, ["accounts", a, "budgets", b]) => {
                self.delete_budget(&account_param(a)?, budget_param(b)?).await
            }
            (_, ["estimates", "job"] | ["accounts", _, "estimate" | "forecast" | "budgets"])
            | (_, ["accounts", _, "budgets", _]) => Err(not_allowed(&method, &path)),
            _ => Err(Problem::not_found(format!("no route for {method} {path}"))),
        }
    }

    async fn quote(&self, req: &Request, now: DateTime<Utc>) -> Result<Response<Body>, Problem> {
        let body = object_body(req)?;
        let mut errors = Vec::new();
        for k in body
            .keys()
            .filter(|k| !["account_id", "job"].contains(&k.as_str()))
        {
            errors.push(FieldError::new(
                k.clone(),
                "unknown_field",
                "is not a field of a quote request",
            ));
        }
        let account_id = match body.get("account_id").and_then(Value::as_str) {
            Some(a) if is_valid_ref_id(a) => Some(a.to_string()),
            Some(_) => {
                errors.push(FieldError::new("account_id", "invalid_format", REF_ID_RULE));
                None
            }
            None => {
                errors.push(FieldError::new("account_id", "required", "is required"));
                None
            }
        };
        let spec = match body.get("job") {
            None => {
                errors.push(FieldError::new("job", "required", "is required"));
                None
            }
            Some(job) => match validate_job(job) {
                Ok(s) => Some(s),
                Err(e) => {
                    errors.extend(e);
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(problems(errors));
        }
        let (account_id, spec) = (account_id.expect("checked"), spec.expect("checked"));
        let loaded = self
            .estimator()
            .load(&account_id, spec.start, None)
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
                &spec,
            )
        });
        match quote {
            Ok(q) => Ok(json_response(
                StatusCode::OK,
                json!({"account_id": account_id, "quote": q}),
            )),
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

    async fn estimate(
        &self,
        req: &Request,
        account_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Response<Body>, Problem> {
        let opts = granularity_param(&req.query_string_parameters())?;
        let e = self
            .estimator()
            .estimate(account_id, now, &opts)
            .await
            .map_err(failure_problem)?;
        Ok(json_response(
            StatusCode::OK,
            serde_json::to_value(&e).expect("estimates serialize"),
        ))
    }

    async fn forecast(
        &self,
        req: &Request,
        account_id: &str,
        now: DateTime<Utc>,
    ) -> Result<Response<Body>, Problem> {
        let q = req.query_string_parameters();
        let days = match q.first("days") {
            None => DEFAULT_FORECAST_DAYS,
            Some(v) => match v.parse::<u32>() {
                Ok(d) if (1..=MAX_FORECAST_DAYS).contains(&d) => d,
                _ => {
                    return Err(Problem::invalid_field(
                        "days",
                        "out_of_range",
                        format!("must be a whole number from 1 to {MAX_FORECAST_DAYS}"),
                    ))
                }
            },
        };
        let opts = granularity_param(&q)?;
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

    async fn require_account(&self, account_id: &str) -> Result<(), Problem> {
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

    async fn put_budget(
        &self,
        req: &Request,
        account_id: &str,
        path_id: Option<&str>,
    ) -> Result<Response<Body>, Problem> {
        if let Some(b) = path_id {
            budget_param(b)?;
        }
        let body = object_body(req)?;
        let budget = validate_budget(account_id, path_id, &body)?;
        self.require_account(account_id).await?;
        let existing = self
            .budgets
            .budgets(account_id)
            .await
            .map_err(|e| store_problem(&e))?;
        let exists = existing.iter().any(|b| b.budget_id == budget.budget_id);
        if path_id.is_none() && exists {
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
        if path_id.is_some() && !exists {
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
            Ok(true) => Ok(Response::builder()
                .status(StatusCode::NO_CONTENT)
                .body(Body::Empty)
                .expect("valid response")),
            Ok(false) => Err(Problem::not_found(format!("no budget {budget_id}"))),
            Err(e) => Err(store_problem(&e)),
        }
    }
}

impl crate::Api {
    fn estimates_api(&self) -> Result<&EstimatesApi, Problem> {
        self.estimates.as_ref().ok_or_else(|| {
            Problem::new(
                503,
                "unavailable",
                "Service unavailable",
                "estimates are not configured on this deployment",
            )
        })
    }

    /// The estimate, forecast and budget routes under `/v1/accounts/{account_id}/`: the route
    /// table has checked the caller may see the account.
    pub(crate) async fn estimates_route(&self, c: &crate::Ctx) -> Result<Response<Body>, Problem> {
        let api = self.estimates_api()?;
        let path = c.req.raw_http_path().to_string();
        let path = if path.is_empty() {
            c.req.uri().path().to_string()
        } else {
            path
        };
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        api.route(&c.req, &segments[1..], c.now).await
    }

    /// `POST /v1/estimates/job`: any key, but a customer key quotes its own account only (404
    /// for another's, as everywhere) and a provider key none.
    pub(crate) async fn quote_job(&self, c: &crate::Ctx) -> Result<Response<Body>, Problem> {
        let api = self.estimates_api()?;
        if let Some(principal) = &c.principal {
            let asked = serde_json::from_slice::<Value>(crate::body_bytes(c.req.body()))
                .ok()
                .and_then(|v| v.get("account_id").and_then(Value::as_str).map(str::to_string));
            let allowed = match principal {
                meterline_shared::domain::access::keys::Principal::Operator { .. } => true,
                meterline_shared::domain::access::keys::Principal::Customer { account_id, .. } => {
                    asked.as_deref().is_none_or(|a| a == account_id)
                }
                meterline_shared::domain::access::keys::Principal::Provider { .. } => false,
            };
            if !allowed {
                return Err(Problem::not_found("no such account"));
            }
        }
        api.route(&c.req, &["estimates", "job"], c.now).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_problems_name_each_field() {
        let errs = validate_job(&json!({"provider_id": "", "duration_seconds": 0, "vcpus": "-1", "x": 1}))
            .unwrap_err();
        let fields: Vec<&str> = errs.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "job.x",
                "job.provider_id",
                "job.start",
                "job.duration_seconds",
                "job.vcpus"
            ]
        );
        let ok = validate_job(&json!({"provider_id": "gpu-co", "start": "2026-01-05T09:00:00Z",
            "duration_seconds": 7200, "gpus": 8, "gpu_model": "H100", "vcpus": 32, "memory_gib": "256"}))
        .unwrap();
        assert_eq!(ok.vcpus, Decimal::from(32));
    }

    #[test]
    fn budget_problems_name_each_field() {
        let body = json!({"budget_id": "b 1", "amount": "10.001", "currency": "USD", "thresholds": [0]});
        let p = validate_budget("a1", None, body.as_object().unwrap()).unwrap_err();
        let fields: Vec<&str> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(fields, ["budget_id", "amount", "thresholds"]);
        let body = json!({"budget_id": "b1", "amount": 100, "currency": "EUR"});
        let b = validate_budget("a1", None, body.as_object().unwrap()).unwrap();
        assert_eq!(b.thresholds, [50, 80, 100]);
        assert_eq!(b.amount, Decimal::from(100));
    }
}
