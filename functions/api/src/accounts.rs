//! Account and subscription routes (see `docs/api.md`):
//!
//! - `POST /v1/accounts` (operator): create, 201; 409 if the id exists.
//! - `GET /v1/accounts` (operator): ids in order, `cursor` and `limit`.
//! - `GET|POST /v1/accounts/{account_id}`: read, update (currency only while the account has
//!   no invoice and no credit; timezone, payment terms, late fee, tax profile, auto-pay). A
//!   customer key may change its timezone and auto-pay only.
//! - `POST|GET /v1/accounts/{account_id}/subscriptions`, `GET .../{subscription_id}`,
//!   `POST .../{subscription_id}/cancel`, `POST .../{subscription_id}/change/preview`,
//!   `POST .../{subscription_id}/change`.
//!
//! Bodies are JSON objects; every problem names its field. Plan changes and cancellations are
//! `meterline_shared::domain::billing::plan_change`; previews rate with the close's own code.

use crate::request::accounts::{
    AccountUpdate, Cancel, CatalogList, NewAccount, NewSubscription, PlanChangeRequest, CUSTOMER_FIELDS,
};
use crate::request::types::{RefId, Version};
use crate::request::Parsed;
use crate::{encode_token, json_response, store_problem, Ctx, Outcome};
use chrono::{DateTime, TimeDelta, Utc};
use lambda_http::http::StatusCode;
use meterline_shared::adapters::http::problem::Problem;
use meterline_shared::domain::billing::plan_change::{
    cancel, change_plan, effective_at, preview_plan_change,
};
use meterline_shared::domain::billing::{
    Account, BillingSchedule, BillingSubscription, CloseInput, PlanChangeError, PlanRef,
};
use meterline_shared::domain::fx::CurrencyPair;
use meterline_shared::domain::pricing::Catalog;
use meterline_shared::domain::usage::FieldError;
use meterline_shared::ports::directory::Written;
use serde_json::{json, Value};

/// Page size when `limit` is absent, and its maximum.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 100;
/// Longest free-text field (names, exemption references, tax ids).
pub const MAX_TEXT: usize = 200;
/// How far in the past a subscription may start (the late-usage window) and in the future.
pub const MAX_START_BACK: TimeDelta = TimeDelta::days(7);
pub const MAX_START_AHEAD: TimeDelta = TimeDelta::days(366);

/// 403 naming every field of `given` outside `allowed`: what a tenant key (`who`) may not change.
pub(crate) fn tenant_may_change(given: &[&str], allowed: &[&str], who: &str) -> Result<(), Problem> {
    let errors: Vec<FieldError> = given
        .iter()
        .filter(|k| !allowed.contains(k))
        .map(|k| FieldError::new(*k, "operator_only", "only an operator key may change it"))
        .collect();
    if errors.is_empty() {
        return Ok(());
    }
    let detail = errors
        .iter()
        .map(|e| e.field.clone())
        .collect::<Vec<_>>()
        .join(", ");
    Err(Problem::new(
        403,
        "forbidden",
        "Forbidden",
        format!("{who} may not change {detail}"),
    )
    .with_errors(errors))
}

/// One page of `items` (sorted by `key`) after `after`.
pub(crate) fn page_of<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> String,
    after: Option<&str>,
    limit: usize,
) -> (Vec<T>, Option<String>) {
    let mut rest: Vec<T> = items
        .into_iter()
        .filter(|i| after.is_none_or(|a| key(i).as_str() > a))
        .collect();
    let more = rest.len() > limit;
    rest.truncate(limit);
    let next = if more {
        rest.last().map(|i| encode_token(&key(i)))
    } else {
        None
    };
    (rest, next)
}

fn conflict(slug: &str, title: &str, detail: impl Into<String>) -> Problem {
    Problem::new(409, slug, title, detail)
}

pub(crate) fn account_json(a: &Account) -> Value {
    json!({
        "account_id": a.account_id,
        "currency": a.currency.code(),
        "timezone": a.timezone.name(),
        "policy": a.policy,
        "auto_pay": a.auto_pay,
        "tax": a.tax,
        "issuer": a.issuer,
        "credit_balance": a.credit_balance.amount.to_string(),
    })
}

fn change_problem(e: PlanChangeError) -> Problem {
    match e {
        PlanChangeError::InvalidPlan(m) => Problem::invalid_field("plan_id", "invalid_plan", m),
        PlanChangeError::Cycle(c) => Problem::new(500, "cycle", "Billing cycle error", c.to_string()),
        e => Problem::new(
            409,
            "subscription-state",
            "The subscription cannot change so",
            e.to_string(),
        ),
    }
}

pub(crate) fn subscription_json(s: &BillingSubscription) -> Value {
    let mut v = json!(s);
    v["status"] = json!(match (s.next_close_at, s.cancelled_at) {
        (None, _) => "ended",
        (Some(_), Some(_)) => "cancelling",
        _ => "active",
    });
    v
}

impl crate::Api {
    async fn subscriber_account(&self, account_id: &str) -> Result<Account, Problem> {
        let api = self.billing_api()?;
        api.billing
            .account(account_id)
            .await
            .map_err(|e| store_problem(&e))?
            .ok_or_else(|| Problem::not_found(format!("no account {account_id}")))
    }

    pub(crate) async fn create_account(&self, c: &Ctx) -> Outcome {
        let account = c.body::<NewAccount>()?.validate("body", NewAccount::validate)?;
        let api = self.billing_api()?;
        match api
            .directory
            .create_account(&account)
            .await
            .map_err(|e| store_problem(&e))?
        {
            Written::Yes => Ok(json_response(StatusCode::CREATED, account_json(&account))),
            Written::Conflict => Err(conflict(
                "account-exists",
                "Account exists",
                format!("account {} exists", account.account_id),
            )),
        }
    }

    pub(crate) async fn list_accounts(&self, c: &Ctx) -> Outcome {
        let (limit, after) = c.query_ok::<CatalogList>()?.page()?;
        let api = self.billing_api()?;
        let page = api
            .directory
            .account_ids(after.as_deref(), limit)
            .await
            .map_err(|e| store_problem(&e))?;
        let data: Vec<Value> = api
            .directory
            .accounts(&page.items)
            .await
            .map_err(|e| store_problem(&e))?
            .iter()
            .map(account_json)
            .collect();
        Ok(json_response(
            StatusCode::OK,
            json!({"data": data, "next_cursor": page.next.as_deref().map(encode_token)}),
        ))
    }

    pub(crate) async fn get_account(&self, c: &Ctx) -> Outcome {
        let id: RefId = c.path("account_id")?;
        let a = self.subscriber_account(&id.0).await?;
        Ok(json_response(StatusCode::OK, account_json(&a)))
    }

    pub(crate) async fn update_account(&self, c: &Ctx) -> Outcome {
        let id: RefId = c.path("account_id")?;
        let id = id.0;
        let Parsed { value, errors } = c.body::<AccountUpdate>()?;
        let Some(update) = value else {
            return Err(crate::request::invalid("body", errors));
        };
        // Terms, numbering, currency and tax position are the operator's to set.
        if matches!(
            c.principal,
            Some(meterline_shared::domain::access::keys::Principal::Customer { .. })
        ) {
            tenant_may_change(&update.given(), &CUSTOMER_FIELDS, "a customer key")?;
        }
        // An invalid body is a 400 even when the store cannot be reached for the other checks.
        let api = match self.billing_api() {
            Ok(api) => api,
            Err(p) if errors.is_empty() => return Err(p),
            Err(_) => return Err(crate::request::invalid("body", errors)),
        };
        for _ in 0..3 {
            let account = self.subscriber_account(&id).await?;
            let has_invoices = api
                .directory
                .has_invoices(&id)
                .await
                .map_err(|e| store_problem(&e))?;
            let updated = crate::request::combine::<AccountUpdate, _>(
                "body",
                errors.clone(),
                update.apply(&account, has_invoices),
            )?;
            match api
                .directory
                .update_account(&updated)
                .await
                .map_err(|e| store_problem(&e))?
            {
                Written::Yes => return Ok(json_response(StatusCode::OK, account_json(&updated))),
                Written::Conflict => continue,
            }
        }
        Err(conflict(
            "conflict",
            "Concurrent change",
            "the account changed while it was updated; retry",
        ))
    }

    /// A catalog plan: the latest version, or `version`; 400 naming `plan_id` (or
    /// `plan_version`) when there is none.
    async fn catalog_plan(
        &self,
        plan_id: &RefId,
        version: Option<Version>,
    ) -> Result<meterline_shared::ports::directory::PlanDoc, Problem> {
        let api = self.billing_api()?;
        let version = version.map(|v| v.0 as u32);
        let doc = api
            .directory
            .plan(&plan_id.0, version)
            .await
            .map_err(|e| store_problem(&e))?;
        doc.ok_or_else(|| {
            let field = if version.is_some() {
                "plan_version"
            } else {
                "plan_id"
            };
            let message = format!(
                "there is no plan {}{}",
                plan_id.0,
                version.map(|v| format!(" version {v}")).unwrap_or_default()
            );
            crate::request::invalid("body", vec![FieldError::new(field, "unknown_plan", message)])
        })
    }

    pub(crate) async fn create_subscription(&self, c: &Ctx) -> Outcome {
        let account_id: RefId = c.path("account_id")?;
        let account_id = account_id.0;
        let Parsed { value, mut errors } = c.body::<NewSubscription>()?;
        let Some(body) = value else {
            return Err(crate::request::invalid("body", errors));
        };
        // The plan is looked up even when other fields are refused: one answer names them all.
        let checked = body.validate(c.now);
        let doc = match &body.plan_id {
            None => None,
            Some(plan_id) => match self.catalog_plan(plan_id, body.plan_version).await {
                Ok(doc) => Some(doc),
                Err(p) if p.status == 400 => {
                    errors.extend(p.errors);
                    None
                }
                Err(p) => return Err(p),
            },
        };
        let ask = crate::request::combine::<NewSubscription, _>("body", errors, checked)?;
        let Some(doc) = doc else {
            return Err(crate::request::invalid(
                "body",
                vec![FieldError::new("plan_id", "required", "is required")],
            ));
        };
        let account = self.subscriber_account(&account_id).await?;
        let schedule = BillingSchedule::new(ask.cadence, ask.alignment, ask.start, account.timezone);
        let mut sub = BillingSubscription::new(&ask.subscription_id, &account_id, schedule, doc.plan.clone())
            .map_err(|e| Problem::invalid_field("start", "out_of_range", e.to_string()))?;
        sub.plan_ref = Some(PlanRef {
            plan_id: doc.plan_id.clone(),
            version: doc.version,
        });
        let api = self.billing_api()?;
        match api
            .directory
            .create_subscription(&sub)
            .await
            .map_err(|e| store_problem(&e))?
        {
            Written::Yes => Ok(json_response(StatusCode::CREATED, subscription_json(&sub))),
            Written::Conflict => Err(conflict(
                "subscription-exists",
                "Subscription exists",
                format!("subscription {} exists", sub.subscription_id),
            )),
        }
    }

    pub(crate) async fn list_subscriptions(&self, c: &Ctx) -> Outcome {
        let account_id: RefId = c.path("account_id")?;
        let account_id = account_id.0;
        let (limit, after) = c.query_ok::<CatalogList>()?.page()?;
        let api = self.billing_api()?;
        self.subscriber_account(&account_id).await?;
        let mut subs = api
            .billing
            .account_subscriptions(&account_id)
            .await
            .map_err(|e| store_problem(&e))?;
        subs.sort_by(|a, b| a.subscription_id.cmp(&b.subscription_id));
        let (page, next) = page_of(subs, |s| s.subscription_id.clone(), after.as_deref(), limit);
        Ok(json_response(
            StatusCode::OK,
            json!({"data": page.iter().map(subscription_json).collect::<Vec<_>>(), "next_cursor": next}),
        ))
    }

    async fn account_subscription(&self, c: &Ctx) -> Result<BillingSubscription, Problem> {
        let account_id: RefId = c.path("account_id")?;
        let sub_id: RefId = c.path("subscription_id")?;
        let sub_id = sub_id.0.as_str();
        let api = self.billing_api()?;
        api.billing
            .subscription(&account_id.0, sub_id)
            .await
            .map_err(|e| store_problem(&e))?
            .ok_or_else(|| Problem::not_found(format!("no subscription {sub_id}")))
    }

    pub(crate) async fn get_subscription(&self, c: &Ctx) -> Outcome {
        let sub = self.account_subscription(c).await?;
        Ok(json_response(StatusCode::OK, subscription_json(&sub)))
    }

    async fn store_changed_subscription(&self, sub: &BillingSubscription) -> Result<(), Problem> {
        match self
            .billing_api()?
            .directory
            .replace_subscription(sub)
            .await
            .map_err(|e| store_problem(&e))?
        {
            Written::Yes => Ok(()),
            Written::Conflict => Err(conflict(
                "conflict",
                "Concurrent change",
                "the subscription was closed or changed meanwhile; retry",
            )),
        }
    }

    pub(crate) async fn cancel_subscription(&self, c: &Ctx) -> Outcome {
        let body = c.body_ok::<Cancel>()?;
        let sub = self.account_subscription(c).await?;
        let at = effective_at(&sub, body.at.into(), c.now).map_err(change_problem)?;
        let cancelled = cancel(&sub, at).map_err(change_problem)?;
        if cancelled != sub {
            self.store_changed_subscription(&cancelled).await?;
        }
        Ok(json_response(StatusCode::OK, subscription_json(&cancelled)))
    }

    /// Reads a change body and computes the changed subscription (nothing written).
    async fn planned_change(
        &self,
        c: &Ctx,
    ) -> Result<(BillingSubscription, BillingSubscription, DateTime<Utc>), Problem> {
        let Parsed { value, mut errors } = c.body::<PlanChangeRequest>()?;
        let Some(body) = value else {
            return Err(crate::request::invalid("body", errors));
        };
        // The plan is looked up even when `at` is refused, so that one answer names both.
        let doc = match self.catalog_plan(&body.plan_id, body.plan_version).await {
            Ok(doc) => Some(doc),
            Err(p) if p.status == 400 => {
                errors.extend(p.errors);
                None
            }
            Err(p) => return Err(p),
        };
        if body.at.is_none() && !errors.iter().any(|e| e.field == "at") {
            errors.push(FieldError::new(
                "at",
                "required",
                "is required: `now` or `period_end`",
            ));
        }
        let (Some(doc), Some(when), true) = (doc, body.at, errors.is_empty()) else {
            return Err(crate::request::invalid("body", errors));
        };
        let sub = self.account_subscription(c).await?;
        let at = effective_at(&sub, when.into(), c.now).map_err(change_problem)?;
        let plan_ref = PlanRef {
            plan_id: doc.plan_id,
            version: doc.version,
        };
        let changed = change_plan(&sub, at, doc.plan, Some(plan_ref)).map_err(change_problem)?;
        Ok((sub, changed, at))
    }

    async fn plan_change_preview(
        &self,
        account: &Account,
        sub: &BillingSubscription,
        changed: &BillingSubscription,
        at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Value, Problem> {
        let api = self.billing_api()?;
        let data = api.billing.catalog().await.map_err(|e| store_problem(&e))?;
        let catalog = Catalog::new(data.books.clone()).map_err(|e| {
            Problem::new(
                500,
                "invalid-catalog",
                "The stored price books are not valid",
                e.to_string(),
            )
        })?;
        let rate = if catalog.currency() == account.currency {
            None
        } else {
            let direct = CurrencyPair::new(catalog.currency(), account.currency);
            let unavailable = |e: meterline_shared::ports::StoreError| {
                Problem::new(503, "unavailable", "Service unavailable", e.to_string())
            };
            let found = match api.rates.latest(direct).await.map_err(unavailable)? {
                Some(r) => Some(r),
                None => api
                    .rates
                    .latest(CurrencyPair::new(account.currency, catalog.currency()))
                    .await
                    .map_err(unavailable)?,
            };
            Some(found.ok_or_else(|| {
                Problem::new(
                    503,
                    "no-exchange-rate",
                    "No exchange rate",
                    format!("no {direct} exchange rate"),
                )
            })?)
        };
        let input = CloseInput {
            account,
            subscription: sub,
            period: changed
                .schedule
                .period_containing(at)
                .map_err(|e| change_problem(e.into()))?,
            catalog: &catalog,
            taxes: &data.taxes,
            fees: &data.fees,
            usage: &[],
            prior: Vec::new(),
            rate: rate.as_ref(),
            now,
            refunds: Vec::new(),
        };
        let p = preview_plan_change(&input, changed, at)
            .map_err(|e| Problem::new(422, "unpriceable", "The change cannot be priced", e.to_string()))?;
        Ok(json!(p))
    }

    pub(crate) async fn preview_change(&self, c: &Ctx) -> Outcome {
        let (sub, changed, at) = self.planned_change(c).await?;
        let account = self.subscriber_account(&sub.account_id).await?;
        let preview = self
            .plan_change_preview(&account, &sub, &changed, at, c.now)
            .await?;
        Ok(json_response(
            StatusCode::OK,
            json!({"subscription_id": sub.subscription_id, "preview": preview}),
        ))
    }

    pub(crate) async fn apply_change(&self, c: &Ctx) -> Outcome {
        let (sub, changed, at) = self.planned_change(c).await?;
        let account = self.subscriber_account(&sub.account_id).await?;
        let preview = self
            .plan_change_preview(&account, &sub, &changed, at, c.now)
            .await?;
        self.store_changed_subscription(&changed).await?;
        Ok(json_response(
            StatusCode::OK,
            json!({"subscription": subscription_json(&changed), "preview": preview}),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::accounts::default_policy;
    use crate::request::parse_body;
    use meterline_shared::domain::money::Money;

    fn new_account(body: Value) -> Result<Account, Problem> {
        parse_body::<NewAccount>(body.to_string().as_bytes()).validate("body", NewAccount::validate)
    }

    #[test]
    fn account_problems_name_each_field() {
        let p = new_account(json!({"account_id": "a 1", "currency": "XXX", "timezone": "Mars/Base",
            "tax": {"jurisdiction": {"country": "germany"}}, "policy": {"terms": {"type": "net", "days": 999}, "grace_days": 0},
            "color": "red"}))
        .unwrap_err();
        let mut fields: Vec<&str> = p.errors.iter().map(|e| e.field.as_str()).collect();
        fields.sort_unstable();
        assert_eq!(
            fields,
            [
                "account_id",
                "color",
                "currency",
                "policy.terms.days",
                "tax.jurisdiction.country",
                "timezone",
            ]
        );
        let a =
            new_account(json!({"account_id": "a1", "currency": "EUR", "timezone": "Europe/Berlin"})).unwrap();
        assert_eq!(a.policy, default_policy());
        assert_eq!(a.credit_balance, Money::zero(a.currency));
    }

    #[test]
    fn the_currency_is_locked_by_an_invoice() {
        let a = new_account(json!({"account_id": "a1", "currency": "EUR"})).unwrap();
        let update: AccountUpdate =
            serde_json::from_value(json!({"currency": "USD", "auto_pay": true})).unwrap();
        let errors = update.apply(&a, true).unwrap_err();
        assert_eq!(errors[0].field, "currency");
        let b = update.apply(&a, false).unwrap();
        assert_eq!((b.currency.code(), b.auto_pay), ("USD", true));
    }

    #[test]
    fn pages_follow_the_key_order() {
        let (p, next) = page_of(vec![1, 2, 3, 4, 5], |i| format!("{i}"), Some("1"), 2);
        assert_eq!(p, [2, 3]);
        let (p, next) = page_of(
            vec![1, 2, 3, 4, 5],
            |i| format!("{i}"),
            Some(&crate::decode_token(&next.unwrap()).unwrap()),
            2,
        );
        assert_eq!(p, [4, 5]);
        assert_eq!(next, None);
    }
}
