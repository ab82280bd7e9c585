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

use crate::limits::{MAX_PERCENT_SCALE, MAX_POLICY_DAYS, MAX_REGION_CHARS, MAX_TIMEZONE_CHARS};
use crate::{decode_token, encode_token, json_response, limit_param, store_problem, Ctx, Outcome};
use chrono::{DateTime, TimeDelta, Utc};
use lambda_http::http::StatusCode;
use lambda_http::{Request, RequestExt};
use meterline_shared::adapters::http::problem::Problem;
use meterline_shared::domain::billing::plan_change::{
    cancel, change_plan, effective_at, preview_plan_change, Effective,
};
use meterline_shared::domain::billing::{
    Account, Alignment, BillingSchedule, BillingSubscription, Cadence, CloseInput, InvoiceNumbering,
    OverduePolicy, PaymentTerms, PlanChangeError, PlanRef,
};
use meterline_shared::domain::fx::CurrencyPair;
use meterline_shared::domain::money::{Currency, Money};
use meterline_shared::domain::pricing::{Catalog, TaxProfile};
use meterline_shared::domain::usage::event::is_valid_ref_id;
use meterline_shared::domain::usage::FieldError;
use meterline_shared::ports::directory::Written;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

/// Page size when `limit` is absent, and its maximum.
pub const DEFAULT_PAGE: usize = 50;
pub const MAX_PAGE: usize = 100;
/// Longest free-text field (names, exemption references, tax ids).
pub const MAX_TEXT: usize = 200;
/// How far in the past a subscription may start (the late-usage window) and in the future.
pub const MAX_START_BACK: TimeDelta = TimeDelta::days(7);
pub const MAX_START_AHEAD: TimeDelta = TimeDelta::days(366);

pub(crate) const ID_RULE: &str = crate::limits::REF_ID_RULE;

/// A JSON object body.
pub(crate) fn object_body(req: &Request) -> Result<Map<String, Value>, Problem> {
    match serde_json::from_slice::<Value>(crate::body_bytes(req.body())) {
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

/// A 400 listing every field error.
pub(crate) fn problems(errors: Vec<FieldError>) -> Problem {
    let detail = errors
        .iter()
        .map(|e| format!("{}: {}", e.field, e.message))
        .collect::<Vec<_>>()
        .join("; ");
    Problem::new(400, "invalid-body", "Invalid request body", detail).with_errors(errors)
}

/// 403 naming every field of `body` outside `allowed`: what a tenant key (`who`) may not change.
pub(crate) fn tenant_may_change(
    body: &Map<String, Value>,
    allowed: &[&str],
    who: &str,
) -> Result<(), Problem> {
    let mut f = Fields::default();
    for k in body.keys().filter(|k| !allowed.contains(&k.as_str())) {
        f.err(k, "operator_only", "only an operator key may change it");
    }
    if f.errors.is_empty() {
        return Ok(());
    }
    let detail = f
        .errors
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
    .with_errors(f.errors))
}

/// Collects field errors while a body is read.
#[derive(Default)]
pub(crate) struct Fields {
    pub errors: Vec<FieldError>,
}

impl Fields {
    pub fn err(&mut self, field: &str, code: &str, message: impl Into<String>) {
        self.errors.push(FieldError::new(field, code, message));
    }

    /// Unknown keys are errors.
    pub fn only(&mut self, body: &Map<String, Value>, known: &[&str], what: &str) {
        for k in body.keys().filter(|k| !known.contains(&k.as_str())) {
            self.err(k, "unknown_field", format!("is not a field of {what}"));
        }
    }

    /// A required (or optional) id.
    pub fn id(&mut self, body: &Map<String, Value>, name: &str, required: bool) -> Option<String> {
        match body.get(name) {
            Some(Value::String(s)) if is_valid_ref_id(s) => Some(s.clone()),
            Some(_) => {
                self.err(name, "invalid_format", ID_RULE);
                None
            }
            None if required => {
                self.err(name, "required", "is required");
                None
            }
            None => None,
        }
    }

    /// A field read with serde; the problem names it.
    pub fn typed<T: DeserializeOwned>(
        &mut self,
        body: &Map<String, Value>,
        name: &str,
        required: bool,
    ) -> Option<T> {
        match body.get(name) {
            Some(v) => match serde_json::from_value(v.clone()) {
                Ok(t) => Some(t),
                Err(e) => {
                    self.err(name, "invalid", e.to_string());
                    None
                }
            },
            None if required => {
                self.err(name, "required", "is required");
                None
            }
            None => None,
        }
    }

    /// A text of 1 to [`MAX_TEXT`] characters.
    pub fn text(&mut self, body: &Map<String, Value>, name: &str, required: bool) -> Option<String> {
        match body.get(name) {
            Some(Value::String(s)) if !s.trim().is_empty() && s.chars().count() <= MAX_TEXT => {
                Some(s.clone())
            }
            Some(_) => {
                self.err(
                    name,
                    "invalid_value",
                    format!("must be a string of 1 to {MAX_TEXT} characters"),
                );
                None
            }
            None if required => {
                self.err(name, "required", "is required");
                None
            }
            None => None,
        }
    }

    pub fn finish(self) -> Result<(), Problem> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(problems(self.errors))
        }
    }
}

/// `cursor` (an opaque token of the last key returned) from the query.
pub(crate) fn cursor_param(
    q: &lambda_http::aws_lambda_events::query_map::QueryMap,
) -> Result<Option<String>, Problem> {
    q.first("cursor").map(decode_token).transpose()
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

/// Checks a tax profile's strings.
fn check_tax(f: &mut Fields, tax: &TaxProfile) {
    if let Some(j) = &tax.jurisdiction {
        if !(j.country.len() == 2 && j.country.chars().all(|c| c.is_ascii_uppercase())) {
            f.err(
                "tax.jurisdiction.country",
                "invalid_format",
                "must be an ISO 3166-1 alpha-2 code, e.g. DE",
            );
        }
        if j.region
            .as_ref()
            .is_some_and(|r| r.is_empty() || r.len() > MAX_REGION_CHARS)
        {
            f.err(
                "tax.jurisdiction.region",
                "invalid_format",
                format!("must be 1 to {MAX_REGION_CHARS} characters"),
            );
        }
    }
    for (name, v) in [
        ("tax.exemption", &tax.exemption),
        ("tax.reverse_charge_tax_id", &tax.reverse_charge_tax_id),
    ] {
        if v.as_ref()
            .is_some_and(|s| s.trim().is_empty() || s.chars().count() > MAX_TEXT)
        {
            f.err(
                name,
                "invalid_value",
                format!("must be 1 to {MAX_TEXT} characters"),
            );
        }
    }
}

fn check_policy(f: &mut Fields, p: &OverduePolicy, currency: Option<Currency>) {
    if let PaymentTerms::Net { days } = p.terms {
        if days > MAX_POLICY_DAYS {
            f.err(
                "policy.terms.days",
                "out_of_range",
                format!("must be at most {MAX_POLICY_DAYS}"),
            );
        }
    }
    if p.grace_days > MAX_POLICY_DAYS {
        f.err(
            "policy.grace_days",
            "out_of_range",
            format!("must be at most {MAX_POLICY_DAYS}"),
        );
    }
    if p.fee_every_days.is_some_and(|d| d == 0 || d > MAX_POLICY_DAYS) {
        f.err(
            "policy.fee_every_days",
            "out_of_range",
            format!("must be 1 to {MAX_POLICY_DAYS}"),
        );
    }
    use meterline_shared::domain::billing::LateFee;
    let money_ok =
        |m: &Money| currency.is_none_or(|c| m.currency == c) && m.amount >= rust_decimal::Decimal::ZERO;
    match &p.late_fee {
        Some(LateFee::Fixed { amount }) if !money_ok(amount) => f.err(
            "policy.late_fee.amount",
            "invalid_value",
            "must be a non-negative amount in the account's currency",
        ),
        Some(LateFee::Percentage { percent, cap }) => {
            if *percent < rust_decimal::Decimal::ZERO
                || *percent > rust_decimal::Decimal::ONE_HUNDRED
                || percent.normalize().scale() > MAX_PERCENT_SCALE
            {
                f.err(
                    "policy.late_fee.percent",
                    "out_of_range",
                    format!("must be 0 to 100 with at most {MAX_PERCENT_SCALE} decimal places"),
                );
            }
            if cap.as_ref().is_some_and(|c| !money_ok(c)) {
                f.err(
                    "policy.late_fee.cap",
                    "invalid_value",
                    "must be a non-negative amount in the account's currency",
                );
            }
        }
        _ => {}
    }
}

/// The default terms of a new account: net 30, no grace, no late fee.
fn default_policy() -> OverduePolicy {
    OverduePolicy {
        terms: PaymentTerms::Net { days: 30 },
        grace_days: 0,
        late_fee: None,
        fee_every_days: None,
    }
}

/// What a customer key may change on its own account.
const CUSTOMER_FIELDS: [&str; 3] = ["account_id", "timezone", "auto_pay"];

const ACCOUNT_FIELDS: [&str; 7] = [
    "account_id",
    "currency",
    "timezone",
    "policy",
    "auto_pay",
    "tax",
    "issuer",
];

fn currency_field(f: &mut Fields, body: &Map<String, Value>, required: bool) -> Option<Currency> {
    match body.get("currency") {
        Some(Value::String(c)) => match Currency::from_code(c) {
            Ok(c) => Some(c),
            Err(_) => {
                f.err(
                    "currency",
                    "unknown_currency",
                    format!("`{c}` is not a supported currency code"),
                );
                None
            }
        },
        Some(_) => {
            f.err("currency", "invalid_type", "must be a currency code, e.g. USD");
            None
        }
        None if required => {
            f.err("currency", "required", "is required (e.g. USD)");
            None
        }
        None => None,
    }
}

fn timezone_field(f: &mut Fields, body: &Map<String, Value>) -> Option<chrono_tz::Tz> {
    match body.get("timezone") {
        None => None,
        Some(Value::String(s)) if s.len() <= MAX_TIMEZONE_CHARS => match s.parse::<chrono_tz::Tz>() {
            Ok(tz) => Some(tz),
            Err(_) => {
                f.err(
                    "timezone",
                    "unknown_timezone",
                    format!("`{s}` is not an IANA timezone"),
                );
                None
            }
        },
        Some(_) => {
            f.err(
                "timezone",
                "invalid_type",
                "must be an IANA timezone name, e.g. Europe/Berlin",
            );
            None
        }
    }
}

fn issuer_field(f: &mut Fields, body: &Map<String, Value>) -> Option<InvoiceNumbering> {
    match body.get("issuer") {
        None => None,
        Some(Value::Object(o)) => {
            let prefix = o.get("prefix").and_then(Value::as_str).unwrap_or_default();
            let r = match o
                .get("digits")
                .map(|d| d.as_u64().and_then(|d| u8::try_from(d).ok()))
            {
                None => InvoiceNumbering::new(prefix),
                Some(Some(d)) => InvoiceNumbering::with_digits(prefix, d),
                Some(None) => {
                    f.err("issuer.digits", "invalid_type", "must be a small whole number");
                    return None;
                }
            };
            r.map_err(|e| f.err("issuer.prefix", "invalid_value", e.to_string()))
                .ok()
        }
        Some(_) => {
            f.err("issuer", "invalid_type", "must be an object {\"prefix\": \"ML\"}");
            None
        }
    }
}

/// Reads a create body into a new account.
pub(crate) fn new_account(body: &Map<String, Value>) -> Result<Account, Problem> {
    let mut f = Fields::default();
    f.only(body, &ACCOUNT_FIELDS, "an account");
    let id = f.id(body, "account_id", true);
    let currency = currency_field(&mut f, body, true);
    let timezone = timezone_field(&mut f, body).unwrap_or(chrono_tz::UTC);
    let policy = f
        .typed::<OverduePolicy>(body, "policy", false)
        .unwrap_or_else(default_policy);
    check_policy(&mut f, &policy, currency);
    let auto_pay = f.typed::<bool>(body, "auto_pay", false).unwrap_or(false);
    let tax = f.typed::<TaxProfile>(body, "tax", false).unwrap_or_default();
    check_tax(&mut f, &tax);
    let issuer = issuer_field(&mut f, body);
    f.finish()?;
    let currency = currency.expect("checked");
    Ok(Account {
        account_id: id.expect("checked"),
        currency,
        timezone,
        policy,
        auto_pay,
        tax,
        issuer: issuer.unwrap_or_else(|| InvoiceNumbering::new("ML").expect("valid prefix")),
        credit_balance: Money::zero(currency),
    })
}

/// Applies an update body to `account`. `has_invoices` locks the currency.
pub(crate) fn updated_account(
    account: &Account,
    body: &Map<String, Value>,
    has_invoices: bool,
) -> Result<Account, Problem> {
    let mut f = Fields::default();
    f.only(body, &ACCOUNT_FIELDS, "an account");
    if let Some(a) = body.get("account_id") {
        if a.as_str() != Some(account.account_id.as_str()) {
            f.err(
                "account_id",
                "mismatch",
                "must be the account of the path, or absent",
            );
        }
    }
    let mut out = account.clone();
    if let Some(c) = currency_field(&mut f, body, false) {
        if c != account.currency {
            if has_invoices {
                f.err(
                    "currency",
                    "locked",
                    "cannot change once the account has an invoice",
                );
            } else if !account.credit_balance.amount.is_zero() {
                f.err(
                    "currency",
                    "locked",
                    "cannot change while the account has a credit balance",
                );
            } else {
                out.currency = c;
                out.credit_balance = Money::zero(c);
            }
        }
    }
    if let Some(tz) = timezone_field(&mut f, body) {
        out.timezone = tz;
    }
    if let Some(p) = f.typed::<OverduePolicy>(body, "policy", false) {
        out.policy = p;
    }
    check_policy(&mut f, &out.policy, Some(out.currency));
    if let Some(a) = f.typed::<bool>(body, "auto_pay", false) {
        out.auto_pay = a;
    }
    if let Some(t) = f.typed::<TaxProfile>(body, "tax", false) {
        check_tax(&mut f, &t);
        out.tax = t;
    }
    if let Some(i) = issuer_field(&mut f, body) {
        if has_invoices && i != account.issuer {
            f.err(
                "issuer",
                "locked",
                "cannot change once the account has an invoice",
            );
        }
        out.issuer = i;
    }
    f.finish()?;
    Ok(out)
}

fn effective_field(f: &mut Fields, body: &Map<String, Value>) -> Option<Effective> {
    match body.get("at").and_then(Value::as_str) {
        Some("now") => Some(Effective::Now),
        Some("period_end") => Some(Effective::PeriodEnd),
        Some(_) | None if body.contains_key("at") => {
            f.err("at", "invalid_value", "must be `now` or `period_end`");
            None
        }
        _ => {
            f.err("at", "required", "is required: `now` or `period_end`");
            None
        }
    }
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
    let mut v = serde_json::to_value(s).expect("subscriptions serialize");
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
        let api = self.billing_api()?;
        let account = new_account(&object_body(&c.req)?)?;
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
        let api = self.billing_api()?;
        let q = c.req.query_string_parameters();
        let limit = limit_param(&q, DEFAULT_PAGE, MAX_PAGE)?;
        let after = cursor_param(&q)?;
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
        let a = self
            .subscriber_account(&crate::account_param(c.param("account_id"))?)
            .await?;
        Ok(json_response(StatusCode::OK, account_json(&a)))
    }

    pub(crate) async fn update_account(&self, c: &Ctx) -> Outcome {
        let api = self.billing_api()?;
        let id = crate::account_param(c.param("account_id"))?;
        let body = object_body(&c.req)?;
        // Terms, numbering, currency and tax position are the operator's to set.
        if matches!(
            c.principal,
            Some(meterline_shared::domain::access::keys::Principal::Customer { .. })
        ) {
            tenant_may_change(&body, &CUSTOMER_FIELDS, "a customer key")?;
        }
        for _ in 0..3 {
            let account = self.subscriber_account(&id).await?;
            let has_invoices = api
                .directory
                .has_invoices(&id)
                .await
                .map_err(|e| store_problem(&e))?;
            let updated = updated_account(&account, &body, has_invoices)?;
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

    /// A catalog plan: the latest version, or `version`.
    async fn catalog_plan(
        &self,
        f: &mut Fields,
        body: &Map<String, Value>,
    ) -> Result<Option<meterline_shared::ports::directory::PlanDoc>, Problem> {
        let api = self.billing_api()?;
        let plan_id = f.id(body, "plan_id", true);
        let version = match body.get("plan_version") {
            None => None,
            Some(v) => match v.as_u64().and_then(|v| u32::try_from(v).ok()).filter(|v| *v > 0) {
                Some(v) => Some(v),
                None => {
                    f.err("plan_version", "invalid_value", "must be a whole number from 1");
                    None
                }
            },
        };
        let Some(plan_id) = plan_id else { return Ok(None) };
        let doc = api
            .directory
            .plan(&plan_id, version)
            .await
            .map_err(|e| store_problem(&e))?;
        if doc.is_none() {
            f.err(
                if version.is_some() {
                    "plan_version"
                } else {
                    "plan_id"
                },
                "unknown_plan",
                format!(
                    "there is no plan {plan_id}{}",
                    version.map(|v| format!(" version {v}")).unwrap_or_default()
                ),
            );
        }
        Ok(doc)
    }

    pub(crate) async fn create_subscription(&self, c: &Ctx) -> Outcome {
        let api = self.billing_api()?;
        let account_id = crate::account_param(c.param("account_id"))?;
        let body = object_body(&c.req)?;
        let mut f = Fields::default();
        f.only(
            body_ref(&body),
            &[
                "subscription_id",
                "plan_id",
                "plan_version",
                "cadence",
                "alignment",
                "start",
            ],
            "a subscription",
        );
        let sub_id = f.id(&body, "subscription_id", true);
        let cadence = f.typed::<Cadence>(&body, "cadence", true);
        let alignment = f
            .typed::<Alignment>(&body, "alignment", false)
            .unwrap_or(Alignment::Calendar);
        let start = match body.get("start") {
            None => Some(c.now),
            Some(v) => match v.as_str().and_then(|s| DateTime::parse_from_rfc3339(s).ok()) {
                Some(t) => {
                    let t = t.with_timezone(&Utc);
                    if t < c.now - MAX_START_BACK || t > c.now + MAX_START_AHEAD {
                        f.err(
                            "start",
                            "out_of_range",
                            "must be from 7 days ago to 366 days ahead",
                        );
                        None
                    } else {
                        Some(t)
                    }
                }
                None => {
                    f.err(
                        "start",
                        "invalid_format",
                        "must be an RFC 3339 time, e.g. 2026-12-01T00:00:00Z",
                    );
                    None
                }
            },
        };
        let doc = self.catalog_plan(&mut f, &body).await?;
        f.finish()?;
        let account = self.subscriber_account(&account_id).await?;
        let (doc, start) = (doc.expect("checked"), start.expect("checked"));
        let schedule = BillingSchedule::new(cadence.expect("checked"), alignment, start, account.timezone);
        let mut sub =
            BillingSubscription::new(&sub_id.expect("checked"), &account_id, schedule, doc.plan.clone())
                .map_err(|e| Problem::invalid_field("start", "out_of_range", e.to_string()))?;
        sub.plan_ref = Some(PlanRef {
            plan_id: doc.plan_id.clone(),
            version: doc.version,
        });
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
        let api = self.billing_api()?;
        let account_id = crate::account_param(c.param("account_id"))?;
        let q = c.req.query_string_parameters();
        let limit = limit_param(&q, DEFAULT_PAGE, MAX_PAGE)?;
        let after = cursor_param(&q)?;
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
        let api = self.billing_api()?;
        let account_id = crate::account_param(c.param("account_id"))?;
        let sub_id = c.param("subscription_id");
        if !is_valid_ref_id(sub_id) {
            return Err(Problem::invalid_field(
                "subscription_id",
                "invalid_format",
                ID_RULE,
            ));
        }
        api.billing
            .subscription(&account_id, sub_id)
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
        let body = object_body(&c.req)?;
        let mut f = Fields::default();
        f.only(&body, &["at"], "a cancellation");
        let when = effective_field(&mut f, &body);
        f.finish()?;
        let sub = self.account_subscription(c).await?;
        let at = effective_at(&sub, when.expect("checked"), c.now).map_err(change_problem)?;
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
        let body = object_body(&c.req)?;
        let mut f = Fields::default();
        f.only(&body, &["plan_id", "plan_version", "at"], "a plan change");
        let when = effective_field(&mut f, &body);
        let doc = self.catalog_plan(&mut f, &body).await?;
        f.finish()?;
        let doc = doc.expect("checked");
        let sub = self.account_subscription(c).await?;
        let at = effective_at(&sub, when.expect("checked"), c.now).map_err(change_problem)?;
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
        Ok(serde_json::to_value(&p).expect("previews serialize"))
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

fn body_ref(b: &Map<String, Value>) -> &Map<String, Value> {
    b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obj(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn account_problems_name_each_field() {
        let p = new_account(&obj(json!({"account_id": "a 1", "currency": "XXX", "timezone": "Mars/Base",
            "tax": {"jurisdiction": {"country": "germany"}}, "policy": {"terms": {"type": "net", "days": 999}, "grace_days": 0},
            "color": "red"})))
        .unwrap_err();
        let fields: Vec<&str> = p.errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            [
                "color",
                "account_id",
                "currency",
                "timezone",
                "policy.terms.days",
                "tax.jurisdiction.country"
            ]
        );
        let a = new_account(&obj(
            json!({"account_id": "a1", "currency": "EUR", "timezone": "Europe/Berlin"}),
        ))
        .unwrap();
        assert_eq!(a.policy, default_policy());
        assert_eq!(a.credit_balance, Money::zero(a.currency));
    }

    #[test]
    fn the_currency_is_locked_by_an_invoice() {
        let a = new_account(&obj(json!({"account_id": "a1", "currency": "EUR"}))).unwrap();
        let body = obj(json!({"currency": "USD", "auto_pay": true}));
        let p = updated_account(&a, &body, true).unwrap_err();
        assert_eq!(p.errors[0].field, "currency");
        let b = updated_account(&a, &body, false).unwrap();
        assert_eq!((b.currency.code(), b.auto_pay), ("USD", true));
    }

    #[test]
    fn pages_follow_the_key_order() {
        let (p, next) = page_of(vec![1, 2, 3, 4, 5], |i| format!("{i}"), Some("1"), 2);
        assert_eq!(p, [2, 3]);
        let (p, next) = page_of(
            vec![1, 2, 3, 4, 5],
            |i| format!("{i}"),
            Some(&decode_token(&next.unwrap()).unwrap()),
            2,
        );
        assert_eq!(p, [4, 5]);
        assert_eq!(next, None);
    }
}
