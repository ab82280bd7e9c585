//! Prepaid credit routes (`docs/credits.md`):
//!
//! - `POST /v1/accounts/{id}/credit-grants` (operators: 201 with the grant),
//!   `GET .../credit-grants` (the grants with their balances);
//! - `GET .../credit-balances`: per currency, granted = available + held + consumed + forfeited;
//! - `GET .../credit-ledger?limit=&cursor=`: the entries in `seq` order, by page;
//! - `POST .../authorizations`: a hold for a job, priced by the quote engine for the job's
//!   whole duration (or an amount given), `201` with the hold or `402` with the shortfall;
//!   `GET .../authorizations/{hold_id}`;
//! - `POST .../authorizations/{hold_id}/capture` and `.../release` (operators: the platform
//!   reports what the job used; a customer key could otherwise capture its own job at zero);
//! - `PUT .../spend-limits` (operators, like granting: 200 with the limits, which replace any
//!   set before) and `GET .../spend-limits` (200, or 404 when none are set): the soft and hard
//!   limits the draw-down checks each period's spend against (`SpendStore`).
//!
//! Every operation runs through `services::credits`, which records the expiries due first.

use super::json_response;
use crate::request::credits::{
    AuthorizationAsk, HoldPrice, LedgerQuery, NewAuthorization, NewCapture, NewGrant, NewSpendLimits,
};
use crate::request::types::RefId;
use crate::routes::{Ctx, Outcome};
use chrono::{DateTime, Utc};
use lambda_http::http::StatusCode;
use meterline_shared::adapters::http::problem::{self, Problem};
use meterline_shared::domain::credits::Hold;
use meterline_shared::domain::credits::{
    hold_amount, job_scope, Balance, CreditError, GrantState, HoldPriceError, HoldRequest, LedgerEntry,
    SpendLimits,
};
use meterline_shared::domain::money::{Currency, Money};
use meterline_shared::ports::billing::BillingStore;
use meterline_shared::ports::credits::CreditStore;
use meterline_shared::ports::spend::SpendStore;
use meterline_shared::ports::StoreError;
use meterline_shared::services::credits::{CaptureRequest, Credits, CreditsFailure, CurrencyBalance, Pause};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::sync::Arc;

/// The credit routes' dependencies: in AWS both stores are the billing table.
pub struct CreditsApi {
    pub credits: Arc<dyn CreditStore>,
    /// Accounts: a route on an unknown account is a 404.
    pub billing: Arc<dyn BillingStore>,
    /// Spend limits (in AWS, the billing table too).
    pub spend: Arc<dyn SpendStore>,
    /// The wait between attempts of an operation that lost a race.
    pub pause: Pause,
}

/// 402 naming what the hold needs, what is available to it and the shortfall.
fn shortfall_problem(needed: Money, available: Money, shortfall: Money) -> Problem {
    let message = format!(
        "needs {} {c}; {} {c} of credit is available to this job: {} {c} short",
        needed.amount,
        available.amount,
        shortfall.amount,
        c = needed.currency.code()
    );
    Problem::new(402, "insufficient-credit", "Insufficient credit", message.clone()).with_errors(vec![
        meterline_shared::domain::usage::FieldError::new("amount", "insufficient_credit", message),
    ])
}

/// The 402 response: the problem with the amounts as members of their own.
fn shortfall_response(
    needed: Money,
    available: Money,
    shortfall: Money,
) -> lambda_http::Response<lambda_http::Body> {
    let p = shortfall_problem(needed, available, shortfall);
    let mut body = serde_json::to_value(&p).unwrap_or_default();
    body["currency"] = json!(needed.currency.code());
    let c = needed.currency;
    body["needed"] = json!(amount(needed.amount, c));
    body["available"] = json!(amount(available.amount, c));
    body["shortfall"] = json!(amount(shortfall.amount, c));
    crate::response(
        StatusCode::PAYMENT_REQUIRED,
        &[("content-type", problem::CONTENT_TYPE)],
        lambda_http::Body::Text(body.to_string()),
    )
}

/// The problem of a refused operation (a shortfall is answered by [`shortfall_response`]).
fn refused(e: CreditError) -> Problem {
    let field = |f: &str, code: &str| Problem::invalid_field(f, code, e.to_string());
    match &e {
        CreditError::UnknownHold(id) => Problem::not_found(format!("no authorization {id}")),
        CreditError::IdReused { .. }
        | CreditError::HoldNotOpen { .. }
        | CreditError::HoldExpired { .. }
        | CreditError::CaptureExceedsHold { .. }
        | CreditError::CurrencyMismatch { .. } => Problem::new(409, "conflict", "Conflict", e.to_string()),
        CreditError::Shortfall { .. } => {
            Problem::new(402, "insufficient-credit", "Insufficient credit", e.to_string())
        }
        CreditError::ExpiresBeforeEffective(_) => field("expires_at", "out_of_range"),
        CreditError::HoldEndsBeforeStart { .. } => field("expires_in_seconds", "out_of_range"),
        CreditError::SourceIsPaid(_) => field("kind", "invalid_value"),
        CreditError::EmptyId(_) | CreditError::AccountMismatch { .. } => field("body", "invalid"),
        CreditError::Negative { .. }
        | CreditError::Zero(_)
        | CreditError::NotMinorUnits { .. }
        | CreditError::TooLarge { .. } => field("amount", "invalid_value"),
    }
}

fn failure(e: CreditsFailure) -> Outcome {
    match e {
        CreditsFailure::Refused(CreditError::Shortfall {
            needed,
            available,
            shortfall,
        }) => Ok(shortfall_response(needed, available, shortfall)),
        CreditsFailure::Refused(e) => Err(refused(e)),
        CreditsFailure::Store(StoreError::InvalidCursor(_)) => Err(Problem::invalid_field(
            "cursor",
            "invalid",
            "is not a cursor this API returned",
        )),
        CreditsFailure::Full { .. } => Err(Problem::new(
            409,
            "credit-ledger-full",
            "Credit ledger full",
            format!("{e}: no new grant or authorization is accepted; captures and releases still are"),
        )),
        CreditsFailure::Store(e) => Err(crate::store_problem(&e)),
    }
}

/// An amount of `currency` as a decimal string with its minor units (`100.00`, `1500` JPY):
/// ledger amounts never have more places, so this only adds zeros.
fn amount(value: Decimal, currency: Currency) -> String {
    let mut v = value;
    if v.scale() < currency.minor_units() {
        v.rescale(currency.minor_units());
    }
    v.to_string()
}

fn balance_json(b: &Balance, c: Currency) -> Value {
    json!({
        "granted": amount(b.granted, c),
        "available": amount(b.available, c),
        "held": amount(b.held, c),
        "consumed": amount(b.consumed, c),
        "forfeited": amount(b.forfeited, c),
    })
}

fn grant_json(g: &GrantState) -> Value {
    let grant = &g.grant;
    json!({
        "grant_id": grant.id,
        "account_id": grant.account_id,
        "amount": amount(grant.amount.amount, grant.amount.currency),
        "currency": grant.amount.currency.code(),
        "kind": grant.kind,
        "priority": grant.priority,
        "effective_at": grant.effective_at,
        "expires_at": grant.expires_at,
        "meters": grant.scope.meters,
        "providers": grant.scope.providers,
        "source": grant.source,
        "balance": balance_json(&g.balance, grant.amount.currency),
        "expired": g.expired,
    })
}

fn hold_json(account_id: &str, h: &Hold) -> Value {
    json!({
        "hold_id": h.id,
        "account_id": account_id,
        "job_id": h.job,
        "currency": h.currency.code(),
        "amount": amount(h.amount, h.currency),
        "held": amount(h.held(), h.currency),
        "status": h.status,
        "provider_id": h.scope.provider,
        "meters": h.scope.meters,
        "placed_at": h.placed_at,
        "expires_at": h.expires_at,
        "captured": h.captured.as_ref().map(|c| json!({
            "capture_id": c.capture_id,
            "amount": amount(c.amount, h.currency),
            "uncovered": amount(c.uncovered, h.currency),
            "beyond_hold": c.beyond_hold,
            "at": c.at,
        })),
    })
}

fn entry_json(e: &LedgerEntry) -> Value {
    json!({
        "seq": e.seq,
        "at": e.at,
        "currency": e.currency.code(),
        "kind": e.kind,
        "cause": e.cause,
        "portions": e.portions.iter().map(|p| json!({"grant_id": p.grant_id, "amount": amount(p.amount, e.currency)})).collect::<Vec<_>>(),
        "amount": amount(e.amount, e.currency),
        "uncovered": amount(e.uncovered, e.currency),
        "available": amount(e.available, e.currency),
        "held": amount(e.held, e.currency),
    })
}

fn limits_json(l: &SpendLimits) -> Value {
    json!({
        "account_id": l.account_id,
        "currency": l.currency.code(),
        "soft": l.soft.map(|v| amount(v, l.currency)),
        "hard": l.hard.map(|v| amount(v, l.currency)),
    })
}

impl CreditsApi {
    fn service(&self) -> Credits<'_> {
        Credits {
            store: self.credits.as_ref(),
            pause: self.pause,
        }
    }

    async fn require_account(&self, account_id: &str) -> Result<(), Problem> {
        match self.billing.account(account_id).await {
            Ok(Some(_)) => Ok(()),
            Ok(None) => Err(Problem::not_found(format!("no account {account_id}"))),
            Err(e) => Err(crate::store_problem(&e)),
        }
    }
}

/// The account's billing currency.
async fn account_currency(api: &crate::Api, account_id: &str) -> Result<Currency, Problem> {
    match api.credits_api()?.billing.account(account_id).await {
        Ok(Some(a)) => Ok(a.currency),
        Ok(None) => Err(Problem::not_found(format!("no account {account_id}"))),
        Err(e) => Err(crate::store_problem(&e)),
    }
}

/// The hold request of a checked authorization, its amount priced by the quote engine for a job.
async fn hold_request(
    api: &crate::Api,
    account_id: &str,
    ask: AuthorizationAsk,
    now: DateTime<Utc>,
) -> Result<HoldRequest, Problem> {
    let (amount, scope) = match &ask.price {
        HoldPrice::Amount {
            amount,
            currency,
            scope,
        } => {
            let currency = match currency {
                Some(c) => *c,
                None => account_currency(api, account_id).await?,
            };
            if let Some(e) = crate::request::credits::places("max_amount", *amount, currency) {
                return Err(crate::request::invalid("body", vec![e]));
            }
            (Money::new(*amount, currency), scope.clone())
        }
        HoldPrice::Job(spec) => {
            let quote = api.estimates_api()?.quote_of(account_id, spec, now).await?;
            let amount = hold_amount(&quote).map_err(|e| match e {
                HoldPriceError::NoOption | HoldPriceError::Unpriced => {
                    Problem::new(422, "unpriceable", "The job cannot be priced", e.to_string())
                }
            })?;
            (amount, job_scope(spec))
        }
    };
    Ok(HoldRequest {
        id: ask.hold_id,
        job: ask.job_id,
        amount,
        scope,
        at: now,
        expires_at: ask.expires_at,
    })
}

impl crate::Api {
    /// The credit routes' dependencies, or a 503 on a deployment without them.
    pub fn credits_api(&self) -> Result<&CreditsApi, Problem> {
        self.credits.as_ref().ok_or_else(|| {
            Problem::new(
                503,
                "unavailable",
                "Service unavailable",
                "credit is not configured on this deployment",
            )
        })
    }

    /// The checked account of the path and the credit routes' dependencies.
    pub(crate) async fn credit_account(&self, c: &Ctx) -> Result<(String, &CreditsApi), Problem> {
        let account: RefId = c.path("account_id")?;
        let api = self.credits_api()?;
        api.require_account(&account.0).await?;
        Ok((account.0, api))
    }

    /// `POST /v1/accounts/{account_id}/credit-grants`
    pub(crate) async fn create_grant(&self, c: &Ctx) -> Outcome {
        let account: RefId = c.path("account_id")?;
        let grant = c
            .body::<NewGrant>()?
            .validate("body", |g| g.validate(&account.0, c.now))?;
        let (account_id, api) = self.credit_account(c).await?;
        // The ledger's state holds every grant: their number is bounded.
        let existing = match api.service().grants(&account_id, c.now).await {
            Ok(g) => g,
            Err(e) => return failure(e),
        };
        if existing.len() >= crate::limits::MAX_GRANTS && !existing.iter().any(|g| g.grant.id == grant.id) {
            return Err(Problem::new(
                409,
                "conflict",
                "Too many grants",
                format!("the account has {} grants, the most it may have", existing.len()),
            ));
        }
        match api.service().grant(&grant, c.now).await {
            Ok(g) => Ok(json_response(StatusCode::CREATED, grant_json(&g))),
            Err(e) => failure(e),
        }
    }

    /// `GET /v1/accounts/{account_id}/credit-grants`
    pub(crate) async fn list_grants(&self, c: &Ctx) -> Outcome {
        let (account_id, api) = self.credit_account(c).await?;
        match api.service().grants(&account_id, c.now).await {
            Ok(list) => Ok(json_response(
                StatusCode::OK,
                json!({"data": list.iter().map(grant_json).collect::<Vec<_>>()}),
            )),
            Err(e) => failure(e),
        }
    }

    /// `GET /v1/accounts/{account_id}/credit-balances`
    pub(crate) async fn get_balances(&self, c: &Ctx) -> Outcome {
        let (account_id, api) = self.credit_account(c).await?;
        let balances = match api.service().balances(&account_id, c.now).await {
            Ok(b) => b,
            Err(e) => return failure(e),
        };
        let data: Vec<Value> = balances
            .iter()
            .map(|CurrencyBalance { currency, balance }| {
                let mut v = balance_json(balance, *currency);
                v["currency"] = json!(currency.code());
                v
            })
            .collect();
        Ok(json_response(
            StatusCode::OK,
            json!({"account_id": account_id, "data": data}),
        ))
    }

    /// `GET /v1/accounts/{account_id}/credit-ledger`
    pub(crate) async fn get_ledger(&self, c: &Ctx) -> Outcome {
        let q = c.query_ok::<LedgerQuery>()?;
        let after = q.cursor.as_ref().map(|c| c.decode()).transpose()?;
        let limit = q.limit.unwrap_or_default().0;
        let (account_id, api) = self.credit_account(c).await?;
        match api
            .service()
            .entries(&account_id, after.as_deref(), limit, c.now)
            .await
        {
            Ok(page) => Ok(json_response(
                StatusCode::OK,
                json!({
                    "data": page.items.iter().map(entry_json).collect::<Vec<_>>(),
                    "next_cursor": page.next.map(|n| crate::encode_token(&n)),
                }),
            )),
            Err(e) => failure(e),
        }
    }

    /// `POST /v1/accounts/{account_id}/authorizations`: 201 with the hold, 402 with the
    /// shortfall.
    pub(crate) async fn create_authorization(&self, c: &Ctx) -> Outcome {
        let account: RefId = c.path("account_id")?;
        let ask = c
            .body::<NewAuthorization>()?
            .validate("body", |a| a.validate(&account.0, c.now))?;
        let (account_id, api) = self.credit_account(c).await?;
        let req = hold_request(self, &account_id, ask, c.now).await?;
        match api.service().place_hold(&account_id, &req).await {
            Ok(h) => Ok(json_response(StatusCode::CREATED, hold_json(&account_id, &h))),
            Err(e) => failure(e),
        }
    }

    /// `GET /v1/accounts/{account_id}/authorizations/{hold_id}`
    pub(crate) async fn get_authorization(&self, c: &Ctx) -> Outcome {
        let hold: RefId = c.path("hold_id")?;
        let (account_id, api) = self.credit_account(c).await?;
        match api.service().hold(&account_id, &hold.0, c.now).await {
            Ok(Some(h)) => Ok(json_response(StatusCode::OK, hold_json(&account_id, &h))),
            Ok(None) => Err(Problem::not_found(format!("no authorization {}", hold.0))),
            Err(e) => failure(e),
        }
    }

    /// `POST /v1/accounts/{account_id}/authorizations/{hold_id}/capture`
    pub(crate) async fn capture_authorization(&self, c: &Ctx) -> Outcome {
        let hold: RefId = c.path("hold_id")?;
        let body = c.body_ok::<NewCapture>()?;
        let (account_id, api) = self.credit_account(c).await?;
        let req = CaptureRequest {
            id: body.capture_id.map_or_else(|| hold.0.clone(), |id| id.0),
            hold_id: hold.0,
            amount: body.amount.0,
            at: c.now,
            beyond_hold: body.beyond_hold.unwrap_or(false),
        };
        match api.service().capture(&account_id, &req).await {
            Ok(h) => Ok(json_response(StatusCode::OK, hold_json(&account_id, &h))),
            Err(e) => failure(e),
        }
    }

    /// `POST /v1/accounts/{account_id}/authorizations/{hold_id}/release`
    pub(crate) async fn release_authorization(&self, c: &Ctx) -> Outcome {
        let hold: RefId = c.path("hold_id")?;
        c.body_ok::<crate::request::NoBody>()?;
        let (account_id, api) = self.credit_account(c).await?;
        match api.service().release(&account_id, &hold.0, c.now).await {
            Ok(h) => Ok(json_response(StatusCode::OK, hold_json(&account_id, &h))),
            Err(e) => failure(e),
        }
    }
}

impl crate::Api {
    /// `PUT /v1/accounts/{account_id}/spend-limits`: 200 with the limits set.
    pub(crate) async fn put_spend_limits(&self, c: &Ctx) -> Outcome {
        let account: RefId = c.path("account_id")?;
        let limits = c
            .body::<NewSpendLimits>()?
            .validate("body", |l| l.validate(&account.0))?;
        let (_, api) = self.credit_account(c).await?;
        match api.spend.put_spend_limits(&limits).await {
            Ok(()) => Ok(json_response(StatusCode::OK, limits_json(&limits))),
            Err(e) => Err(crate::store_problem(&e)),
        }
    }

    /// `GET /v1/accounts/{account_id}/spend-limits`: 404 when none are set.
    pub(crate) async fn get_spend_limits(&self, c: &Ctx) -> Outcome {
        let (account_id, api) = self.credit_account(c).await?;
        match api.spend.spend_limits(&account_id).await {
            Ok(Some(l)) => Ok(json_response(StatusCode::OK, limits_json(&l))),
            Ok(None) => Err(Problem::not_found(format!(
                "no spend limits on account {account_id}"
            ))),
            Err(e) => Err(crate::store_problem(&e)),
        }
    }
}

/// The pause between attempts of a credit operation that lost a race: exponential from 20 ms
/// with jitter (`adapters::aws::backoff`).
pub fn pause(attempt: u32) -> futures::future::BoxFuture<'static, ()> {
    meterline_shared::adapters::aws::pause(attempt)
}
