//! Requests of the account and subscription routes.

use super::types::{
    AlignmentName, CadenceName, CatalogPage, Country, CurrencyCode, Cursor, FeeDays, Percent, PolicyDays,
    RefId, Reference, Region, Time, Timezone, Version,
};
use crate::limits::{MAX_START_AHEAD, MAX_START_BACK};
use chrono::{DateTime, Utc};
use meterline_shared::domain::billing::plan_change::Effective;
use meterline_shared::domain::billing::{
    Account, Alignment, Cadence, InvoiceNumbering, LateFee, OverduePolicy, PaymentTerms,
};
use meterline_shared::domain::money::{Currency, Money};
use meterline_shared::domain::pricing::{Jurisdiction, TaxProfile};
use meterline_shared::domain::usage::FieldError;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::json;
use utoipa::openapi::schema::{AdditionalProperties, ObjectBuilder, OneOfBuilder, Schema, SchemaType, Type};
use utoipa::openapi::RefOr;
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// `limit` and `cursor` of the catalog lists (accounts, subscriptions, providers, books, plans).
#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CatalogList {
    #[param(inline)]
    pub limit: Option<CatalogPage>,
    #[param(inline)]
    pub cursor: Option<Cursor>,
}

impl CatalogList {
    /// The page size and the position after which the page starts.
    pub fn page(
        &self,
    ) -> Result<(usize, Option<String>), meterline_shared::adapters::http::problem::Problem> {
        let after = self.cursor.as_ref().map(Cursor::decode).transpose()?;
        Ok((self.limit.unwrap_or_default().0, after))
    }
}

/// The kind of payment terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TermsKind {
    /// Due on the day it is issued.
    DueOnReceipt,
    /// Due `days` after the issue date.
    Net,
}

/// When an invoice is due: `{"type": "net", "days": 30}` or `{"type": "due_on_receipt"}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TermsInput {
    #[serde(rename = "type")]
    pub kind: TermsKind,
    /// With `net` only.
    #[serde(default)]
    pub days: Option<PolicyDays>,
}

/// An object of one kind (`type`) and the fields that kind requires and allows: how a body with a
/// `type` is described, one alternative per kind (read flat, so that a refused field keeps its
/// path).
fn kind_shape(kind: &str, fields: &[(&str, RefOr<Schema>, bool)]) -> ObjectBuilder {
    let mut o = ObjectBuilder::new()
        .schema_type(SchemaType::Type(Type::Object))
        .property(
            "type",
            ObjectBuilder::new()
                .schema_type(SchemaType::Type(Type::String))
                .enum_values(Some([kind])),
        )
        .required("type")
        .additional_properties(Some(AdditionalProperties::<Schema>::FreeForm(false)));
    for (name, schema, required) in fields {
        o = o.property(*name, schema.clone());
        if *required {
            o = o.required(*name);
        }
    }
    o
}

impl PartialSchema for TermsInput {
    fn schema() -> RefOr<Schema> {
        RefOr::T(Schema::OneOf(
            OneOfBuilder::new()
                .item(kind_shape("net", &[("days", PolicyDays::schema(), true)]))
                .item(kind_shape("due_on_receipt", &[]))
                .description(Some(
                    "When an invoice is due: `days` after its issue date, or on it",
                ))
                .examples([json!({"type": "net", "days": 30})])
                .build(),
        ))
    }
}
impl ToSchema for TermsInput {}

/// A money amount: a non-negative decimal string in a currency.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoneyInput {
    #[schema(inline)]
    pub amount: super::types::Quantity,
    #[schema(inline)]
    pub currency: CurrencyCode,
}

/// The kind of late fee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum LateFeeKind {
    /// `amount` per fee period.
    Fixed,
    /// `percent` of what is outstanding, at most `cap`.
    Percentage,
}

/// A late fee: `{"type": "fixed", "amount": {...}}` or `{"type": "percentage", "percent": "1.5",
/// "cap": {...}}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LateFeeInput {
    #[serde(rename = "type")]
    pub kind: LateFeeKind,
    /// With `fixed` only.
    #[serde(default)]
    pub amount: Option<MoneyInput>,
    /// With `percentage` only.
    #[serde(default)]
    pub percent: Option<Percent>,
    /// With `percentage` only: the largest fee.
    #[serde(default)]
    pub cap: Option<MoneyInput>,
}

impl PartialSchema for LateFeeInput {
    fn schema() -> RefOr<Schema> {
        let money = || RefOr::Ref(utoipa::openapi::Ref::from_schema_name("MoneyInput"));
        RefOr::T(Schema::OneOf(
            OneOfBuilder::new()
                .item(kind_shape("fixed", &[("amount", money(), true)]))
                .item(kind_shape(
                    "percentage",
                    &[("percent", Percent::schema(), true), ("cap", money(), false)],
                ))
                .description(Some(
                    "A late fee per fee period: a fixed amount, or a percentage of what is outstanding (at most `cap`), in the account's currency",
                ))
                .examples([json!({"type": "percentage", "percent": "1.5"})])
                .build(),
        ))
    }
}

impl ToSchema for LateFeeInput {
    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push(("MoneyInput".to_string(), MoneyInput::schema()));
        MoneyInput::schemas(schemas);
    }
}

impl LateFeeInput {
    fn fee(&self, errors: &mut Vec<FieldError>) -> Option<LateFee> {
        let mut wrong = |field: &str, code: &str, message: &str| {
            errors.push(FieldError::new(format!("policy.late_fee.{field}"), code, message));
        };
        match self.kind {
            LateFeeKind::Fixed => {
                if self.percent.is_some() || self.cap.is_some() {
                    wrong(
                        "percent",
                        "not_allowed",
                        "is not allowed with a fixed fee (nor is `cap`)",
                    );
                }
                match &self.amount {
                    Some(a) => Some(LateFee::Fixed { amount: money(a) }),
                    None => {
                        wrong("amount", "required", "is required with a fixed fee");
                        None
                    }
                }
            }
            LateFeeKind::Percentage => {
                if self.amount.is_some() {
                    wrong("amount", "not_allowed", "is not allowed with a percentage fee");
                }
                match self.percent {
                    Some(p) => Some(LateFee::Percentage {
                        percent: p.0,
                        cap: self.cap.as_ref().map(money),
                    }),
                    None => {
                        wrong("percent", "required", "is required with a percentage fee");
                        None
                    }
                }
            }
        }
    }
}

/// Payment terms and late fees. Default: net 30, no grace, no late fee.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyInput {
    pub terms: TermsInput,
    #[serde(default)]
    #[schema(inline)]
    pub grace_days: Option<PolicyDays>,
    #[serde(default)]
    pub late_fee: Option<LateFeeInput>,
    /// Days between late fees; absent: the fee is charged once.
    #[serde(default)]
    #[schema(inline)]
    pub fee_every_days: Option<FeeDays>,
}

/// Where the account's supply is taxed: an ISO 3166-1 alpha-2 country, optionally a region.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct JurisdictionInput {
    #[schema(inline)]
    pub country: Country,
    #[serde(default)]
    #[schema(inline)]
    pub region: Option<Region>,
}

/// The account's tax position.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TaxInput {
    #[serde(default)]
    pub jurisdiction: Option<JurisdictionInput>,
    /// An exemption certificate reference: no tax is charged.
    #[serde(default)]
    #[schema(inline)]
    pub exemption: Option<Reference>,
    /// A business customer's tax id: it accounts for the tax itself (reverse charge).
    #[serde(default)]
    #[schema(inline)]
    pub reverse_charge_tax_id: Option<Reference>,
}

/// How invoices are numbered: `{"prefix": "ML", "digits": 6}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuerInput {
    /// 1 to 16 of `A-Z 0-9`, starting with a letter.
    #[schema(pattern = "^[A-Z][A-Z0-9]{0,15}$", example = "ML")]
    pub prefix: String,
    /// Zero-padded width, 1 to 20 (default 6).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 20)]
    pub digits: Option<u8>,
}

/// An account to create.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"account_id": "acct_1", "currency": "USD", "timezone": "Europe/Berlin",
    "policy": {"terms": {"type": "net", "days": 30}}, "tax": {"jurisdiction": {"country": "DE"}}}))]
pub struct NewAccount {
    #[schema(inline)]
    pub account_id: RefId,
    /// The invoices' currency; fixed once an invoice exists.
    #[schema(inline)]
    pub currency: CurrencyCode,
    /// IANA timezone: invoices' issue and due dates are local dates. Default `UTC`.
    #[serde(default)]
    pub timezone: Option<Timezone>,
    #[serde(default)]
    pub policy: Option<PolicyInput>,
    /// Payment is requested automatically when an invoice is finalized (default false).
    #[serde(default)]
    pub auto_pay: Option<bool>,
    #[serde(default)]
    pub tax: Option<TaxInput>,
    /// Fixed once an invoice exists. Default `{"prefix": "ML", "digits": 6}`.
    #[serde(default)]
    pub issuer: Option<IssuerInput>,
}

/// A change of an account: the fields given. A customer key may change `timezone` and
/// `auto_pay` only.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"auto_pay": true}))]
pub struct AccountUpdate {
    /// The path's account, or absent.
    #[serde(default)]
    #[schema(inline)]
    pub account_id: Option<RefId>,
    #[serde(default)]
    #[schema(inline)]
    pub currency: Option<CurrencyCode>,
    #[serde(default)]
    pub timezone: Option<Timezone>,
    #[serde(default)]
    pub policy: Option<PolicyInput>,
    #[serde(default)]
    pub auto_pay: Option<bool>,
    #[serde(default)]
    pub tax: Option<TaxInput>,
    #[serde(default)]
    pub issuer: Option<IssuerInput>,
}

/// The fields of [`AccountUpdate`] a customer key may give.
pub const CUSTOMER_FIELDS: [&str; 3] = ["account_id", "timezone", "auto_pay"];

fn money(m: &MoneyInput) -> Money {
    Money::new(m.amount.0, m.currency.0)
}

impl PolicyInput {
    /// The policy.
    fn policy(&self, errors: &mut Vec<FieldError>) -> OverduePolicy {
        let days = |d: PolicyDays| d.0 as u16;
        let terms = match (self.terms.kind, self.terms.days) {
            (TermsKind::DueOnReceipt, None) => PaymentTerms::DueOnReceipt,
            (TermsKind::Net, Some(d)) => PaymentTerms::Net { days: days(d) },
            (TermsKind::Net, None) => {
                errors.push(FieldError::new(
                    "policy.terms.days",
                    "required",
                    "is required with `net` terms",
                ));
                default_policy().terms
            }
            (TermsKind::DueOnReceipt, Some(_)) => {
                errors.push(FieldError::new(
                    "policy.terms.days",
                    "not_allowed",
                    "is not allowed with `due_on_receipt` terms",
                ));
                PaymentTerms::DueOnReceipt
            }
        };
        let late_fee = self.late_fee.as_ref().and_then(|fee| fee.fee(errors));
        OverduePolicy {
            terms,
            grace_days: self.grace_days.map_or(0, days),
            late_fee,
            fee_every_days: self.fee_every_days.map(|d| d.0 as u16),
        }
    }
}

/// A late fee's amounts must be in the account's currency.
fn check_fee_currency(p: &OverduePolicy, currency: Currency, errors: &mut Vec<FieldError>) {
    let wrong = |m: &Money| m.currency != currency || m.amount < Decimal::ZERO;
    let bad = match &p.late_fee {
        Some(LateFee::Fixed { amount }) if wrong(amount) => Some("policy.late_fee.amount"),
        Some(LateFee::Percentage { cap: Some(c), .. }) if wrong(c) => Some("policy.late_fee.cap"),
        _ => None,
    };
    if let Some(field) = bad {
        errors.push(FieldError::new(
            field,
            "invalid_value",
            "must be a non-negative amount in the account's currency",
        ));
    }
}

impl TaxInput {
    fn profile(&self) -> TaxProfile {
        let jurisdiction = self.jurisdiction.as_ref().map(|j| Jurisdiction {
            country: j.country.0.clone(),
            region: j.region.as_ref().map(|r| r.0.clone()),
        });
        TaxProfile {
            jurisdiction,
            exemption: self.exemption.as_ref().map(|r| r.0.clone()),
            reverse_charge_tax_id: self.reverse_charge_tax_id.as_ref().map(|r| r.0.clone()),
        }
    }
}

impl IssuerInput {
    fn numbering(&self, errors: &mut Vec<FieldError>) -> Option<InvoiceNumbering> {
        let r = match self.digits {
            None => InvoiceNumbering::new(&self.prefix),
            Some(d) => InvoiceNumbering::with_digits(&self.prefix, d),
        };
        r.map_err(|e| errors.push(FieldError::new("issuer.prefix", "invalid_value", e.to_string())))
            .ok()
    }
}

/// The default terms of a new account: net 30, no grace, no late fee.
pub fn default_policy() -> OverduePolicy {
    OverduePolicy {
        terms: PaymentTerms::Net { days: 30 },
        grace_days: 0,
        late_fee: None,
        fee_every_days: None,
    }
}

fn finish<T>(value: T, errors: Vec<FieldError>) -> Result<T, Vec<FieldError>> {
    if errors.is_empty() {
        Ok(value)
    } else {
        Err(errors)
    }
}

impl NewAccount {
    /// The account, or every error.
    pub fn validate(self) -> Result<Account, Vec<FieldError>> {
        let mut errors = Vec::new();
        let currency = self.currency.0;
        let policy = self
            .policy
            .as_ref()
            .map_or_else(default_policy, |p| p.policy(&mut errors));
        check_fee_currency(&policy, currency, &mut errors);
        let tax = self.tax.as_ref().map(|t| t.profile()).unwrap_or_default();
        let issuer = match &self.issuer {
            Some(i) => i.numbering(&mut errors),
            None => InvoiceNumbering::new("ML").ok(),
        };
        let account = issuer.map(|issuer| Account {
            account_id: self.account_id.0,
            currency,
            timezone: self.timezone.map_or(chrono_tz::UTC, |t| t.0),
            policy,
            auto_pay: self.auto_pay.unwrap_or(false),
            tax,
            issuer,
            credit_balance: Money::zero(currency),
        });
        match account {
            Some(a) => finish(a, errors),
            None => Err(errors),
        }
    }
}

impl AccountUpdate {
    /// The fields the body gives, for the customer-key check.
    pub fn given(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        let fields: [(&'static str, bool); 7] = [
            ("account_id", self.account_id.is_some()),
            ("currency", self.currency.is_some()),
            ("timezone", self.timezone.is_some()),
            ("policy", self.policy.is_some()),
            ("auto_pay", self.auto_pay.is_some()),
            ("tax", self.tax.is_some()),
            ("issuer", self.issuer.is_some()),
        ];
        for (name, given) in fields {
            if given {
                out.push(name);
            }
        }
        out
    }

    /// `account` changed by this update, or every error. `has_invoices` locks the currency and
    /// the numbering.
    pub fn apply(&self, account: &Account, has_invoices: bool) -> Result<Account, Vec<FieldError>> {
        let mut errors = Vec::new();
        if self
            .account_id
            .as_ref()
            .is_some_and(|a| a.0 != account.account_id)
        {
            errors.push(FieldError::new(
                "account_id",
                "mismatch",
                "must be the account of the path, or absent",
            ));
        }
        let mut out = account.clone();
        if let Some(CurrencyCode(c)) = self.currency {
            if c != account.currency {
                if has_invoices {
                    errors.push(FieldError::new(
                        "currency",
                        "locked",
                        "cannot change once the account has an invoice",
                    ));
                } else if !account.credit_balance.amount.is_zero() {
                    errors.push(FieldError::new(
                        "currency",
                        "locked",
                        "cannot change while the account has a credit balance",
                    ));
                } else {
                    out.currency = c;
                    out.credit_balance = Money::zero(c);
                }
            }
        }
        if let Some(tz) = self.timezone {
            out.timezone = tz.0;
        }
        if let Some(p) = &self.policy {
            out.policy = p.policy(&mut errors);
        }
        check_fee_currency(&out.policy, out.currency, &mut errors);
        if let Some(a) = self.auto_pay {
            out.auto_pay = a;
        }
        if let Some(t) = &self.tax {
            out.tax = t.profile();
        }
        if let Some(i) = &self.issuer {
            if let Some(n) = i.numbering(&mut errors) {
                if has_invoices && n != account.issuer {
                    errors.push(FieldError::new(
                        "issuer",
                        "locked",
                        "cannot change once the account has an invoice",
                    ));
                }
                out.issuer = n;
            }
        }
        finish(out, errors)
    }
}

/// A new subscription to a catalog plan.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"subscription_id": "sub_1", "plan_id": "pro", "cadence": "monthly"}))]
pub struct NewSubscription {
    // The required fields are read as optional (the description says they are required, and
    // a missing one is named), so that the other fields and the plan are still checked and one
    // answer names every field.
    #[serde(default)]
    #[schema(inline, required = true, nullable = false)]
    pub subscription_id: Option<RefId>,
    #[serde(default)]
    #[schema(inline, required = true, nullable = false)]
    pub cadence: Option<CadenceName>,
    /// `calendar` (default) or `anniversary`.
    #[serde(default)]
    #[schema(inline)]
    pub alignment: Option<AlignmentName>,
    /// From 7 days ago to 366 days ahead; default now. Period 0 starts here.
    #[serde(default)]
    #[schema(inline)]
    pub start: Option<Time>,
    #[serde(default)]
    #[schema(inline, required = true, nullable = false)]
    pub plan_id: Option<RefId>,
    /// Default: the plan's latest version.
    #[serde(default)]
    #[schema(inline)]
    pub plan_version: Option<Version>,
}

/// A checked [`NewSubscription`].
pub struct SubscriptionAsk {
    pub subscription_id: String,
    pub cadence: Cadence,
    pub alignment: Alignment,
    pub start: DateTime<Utc>,
}

impl NewSubscription {
    /// The subscription asked for (its start now when absent), or every error.
    pub fn validate(&self, now: DateTime<Utc>) -> Result<SubscriptionAsk, Vec<FieldError>> {
        let start = self.start.map_or(now, |t| t.0);
        let mut errors = Vec::new();
        if start < now - MAX_START_BACK || start > now + MAX_START_AHEAD {
            errors.push(FieldError::new(
                "start",
                "out_of_range",
                "must be from 7 days ago to 366 days ahead",
            ));
        }
        for (field, given) in [
            ("subscription_id", self.subscription_id.is_some()),
            ("cadence", self.cadence.is_some()),
            ("plan_id", self.plan_id.is_some()),
        ] {
            if !given {
                errors.push(FieldError::new(field, "required", "is required"));
            }
        }
        match (&self.subscription_id, self.cadence) {
            (Some(id), Some(cadence)) if errors.is_empty() => Ok(SubscriptionAsk {
                subscription_id: id.0.clone(),
                cadence: cadence.0,
                alignment: self.alignment.map_or(Alignment::Calendar, |a| a.0),
                start,
            }),
            _ => Err(errors),
        }
    }
}

/// When a cancellation or plan change takes effect.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum At {
    /// Now: the open period's fees are prorated to now.
    Now,
    /// At the end of the open period.
    PeriodEnd,
}

impl From<At> for Effective {
    fn from(a: At) -> Effective {
        match a {
            At::Now => Effective::Now,
            At::PeriodEnd => Effective::PeriodEnd,
        }
    }
}

/// A cancellation.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"at": "period_end"}))]
pub struct Cancel {
    pub at: At,
}

/// A change of plan.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"plan_id": "pro", "at": "now"}))]
pub struct PlanChangeRequest {
    #[schema(inline)]
    pub plan_id: RefId,
    /// Default: the plan's latest version.
    #[serde(default)]
    #[schema(inline)]
    pub plan_version: Option<Version>,
    /// Required. (Read as optional, so that the plan is still looked up and one answer names
    /// every field.)
    #[serde(default)]
    #[schema(required = true, nullable = false)]
    pub at: Option<At>,
}
