//! What an account has subscribed to: pay-per-use, a subscription with allowances and overage,
//! a hybrid of both, reserved capacity, and subscription-level minimum and maximum.
//!
//! * pay-per-use: [`Plan::default`] — every row at the price book's price;
//! * subscription with overage: a `recurring_fee` and an [`Allowance`] on each meter, with an
//!   `overage_unit_price` beyond it;
//! * hybrid: a fee and allowances on some meters; meters without an allowance are pay-per-use
//!   (and an allowance without `overage_unit_price` falls back to the book for overage);
//! * reserved capacity: one or more [`Reservation`]s.

use super::book::{DiscountScope, TaxMode, VolumeDiscount};
use super::period::Period;
use super::tax::TaxProfile;
use super::validate::{discount_rules, ValidationErrors, ValidationIssue};
use crate::domain::meter::Meter;
use crate::domain::money::Currency;
use crate::domain::parse::{decimal, instant, opt_decimal};
use chrono::{DateTime, Months, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The account being rated, its plan and its tax position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subscription {
    pub account_id: String,
    #[serde(default)]
    pub plan: Plan,
    #[serde(default)]
    pub tax: TaxProfile,
}

impl Subscription {
    /// Pay-per-use, untaxed.
    pub fn pay_per_use(account_id: &str) -> Subscription {
        Subscription {
            account_id: account_id.to_string(),
            plan: Plan::default(),
            tax: TaxProfile::default(),
        }
    }
}

/// Plan terms. Amounts are in the catalog's currency.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Plan {
    #[serde(default)]
    pub name: String,
    /// Charged every period, prorated by seconds to `active`.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_decimal")]
    pub recurring_fee: Option<Decimal>,
    /// When the subscription is active; `None` means the whole period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub active: Option<Period>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowances: Vec<Allowance>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub reservations: Vec<Reservation>,
    /// The least the whole invoice (before tax) may come to.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_decimal")]
    pub minimum: Option<Decimal>,
    /// The most the whole invoice (before tax) may come to.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_decimal")]
    pub maximum: Option<Decimal>,
    /// Whether the plan's own amounts (fees, adjustments) include tax.
    #[serde(default)]
    pub tax_mode: TaxMode,
    /// A discount on every provider's usage rated under the plan (scope `plan`), its cost split
    /// across providers (`docs/pricing.md`, volume discounts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_discount: Option<VolumeDiscount>,
}

/// Units of a meter included each period; beyond them, `overage_unit_price` per unit, or the
/// price book's price when absent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allowance {
    pub meter: Meter,
    #[serde(with = "decimal")]
    pub quantity: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_decimal")]
    pub overage_unit_price: Option<Decimal>,
}

/// How a reservation is paid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Upfront {
    /// Everything upfront: `upfront_amount > 0`, `monthly_fee = 0`.
    All,
    /// Part upfront, part monthly: both greater than zero.
    Partial,
    /// Nothing upfront: `upfront_amount = 0`.
    None,
}

impl Upfront {
    /// The name as written in JSON (`all`, `partial`, `none`).
    pub fn as_str(self) -> &'static str {
        match self {
            Upfront::All => "all",
            Upfront::Partial => "partial",
            Upfront::None => "none",
        }
    }
}

/// What cancelling a reservation before its term ends gives back (see `docs/pricing.md`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnCancel {
    /// Nothing: the upfront invoiced at purchase stays owed.
    #[default]
    NoRefund,
    /// A credit note for the upfront's share of the term months not started yet.
    CreditNote,
}

/// A commitment to `units_per_period` of a meter every month for `term_months` months from
/// `term_start`. Usage up to the reserved units is covered (of `provider_id` only, when given);
/// usage beyond is charged on demand at the book price; unused units are still paid.
///
/// The upfront amount is invoiced once, on its own invoice, when the term starts
/// ([`crate::domain::billing::upfront`]); each period in the term invoices the monthly fee.
/// A reservation is one purchase per `id` and `term_start`: a change of plan that keeps both
/// keeps the reservation (its upfront is not invoiced again).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reservation {
    pub id: String,
    pub meter: Meter,
    #[serde(with = "decimal")]
    pub units_per_period: Decimal,
    #[serde(with = "instant")]
    pub term_start: DateTime<Utc>,
    pub term_months: u32,
    pub upfront: Upfront,
    #[serde(default, with = "decimal")]
    pub upfront_amount: Decimal,
    #[serde(default, with = "decimal")]
    pub monthly_fee: Decimal,
    /// The provider whose capacity is reserved: only its usage is covered, and its statements
    /// carry the upfront and the fees. `None`: any provider's usage; the marketplace's sale.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub provider_id: Option<String>,
    /// What cancelling it before the term ends gives back.
    #[serde(default, skip_serializing_if = "is_default")]
    pub on_cancel: OnCancel,
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

impl Reservation {
    /// The index of the term month that holds `t`, if `t` is within the term.
    pub fn period_index(&self, t: DateTime<Utc>) -> Option<u32> {
        (0..self.term_months).find(|&k| {
            let s = self.term_start.checked_add_months(Months::new(k));
            let e = self.term_start.checked_add_months(Months::new(k + 1));
            matches!((s, e), (Some(s), Some(e)) if s <= t && t < e)
        })
    }

    /// The start of term month `k` (`k = term_months`: the end of the term).
    pub fn month_start(&self, k: u32) -> Option<DateTime<Utc>> {
        self.term_start.checked_add_months(Months::new(k))
    }

    /// The whole term, `[term_start, term_start + term_months)`.
    pub fn term(&self) -> Option<Period> {
        Some(Period::new(self.term_start, self.month_start(self.term_months)?))
    }

    /// Whether `other` is the same purchase: the same id and term start.
    pub fn same_purchase(&self, other: &Reservation) -> bool {
        self.id == other.id && self.term_start == other.term_start
    }

    /// The upfront amount amortized to term month `k`:
    /// `round(U × (k+1) / T) − round(U × k / T)`, so the months add up to `U` exactly.
    pub fn amortized(&self, k: u32, currency: Currency) -> Decimal {
        currency.amortized(self.upfront_amount, k, self.term_months)
    }
}

impl Plan {
    /// Checks the plan's own rules; paths are relative to the plan (`reservations[0].upfront`).
    pub fn validate(&self) -> Result<(), ValidationErrors> {
        let mut v = Vec::new();
        let mut push = |path: String, code: &'static str, message: String| {
            v.push(ValidationIssue { path, code, message })
        };
        let neg = |d: Decimal| d.is_sign_negative() && !d.is_zero();
        if self.recurring_fee.is_some_and(neg) {
            push(
                "recurring_fee".into(),
                "negative_price",
                "must not be negative".into(),
            );
        }
        if let Some(a) = self.active {
            if a.end <= a.start {
                push(
                    "active.end".into(),
                    "inverted_dates",
                    "end is not after start".into(),
                );
            }
        }
        for (i, a) in self.allowances.iter().enumerate() {
            if neg(a.quantity) {
                push(
                    format!("allowances[{i}].quantity"),
                    "negative_quantity",
                    "must not be negative".into(),
                );
            }
            if a.overage_unit_price.is_some_and(neg) {
                push(
                    format!("allowances[{i}].overage_unit_price"),
                    "negative_price",
                    "must not be negative".into(),
                );
            }
            if self.allowances[..i].iter().any(|b| b.meter == a.meter) {
                push(
                    format!("allowances[{i}].meter"),
                    "duplicate_allowance",
                    format!("meter `{}` already has an allowance", a.meter),
                );
            }
        }
        for (i, r) in self.reservations.iter().enumerate() {
            let p = format!("reservations[{i}]");
            if r.units_per_period <= Decimal::ZERO {
                push(
                    format!("{p}.units_per_period"),
                    "non_positive",
                    "must be greater than zero".into(),
                );
            }
            if r.term_months == 0 {
                push(
                    format!("{p}.term_months"),
                    "non_positive",
                    "must be greater than zero".into(),
                );
            }
            if neg(r.upfront_amount) || neg(r.monthly_fee) {
                push(
                    format!("{p}.upfront_amount"),
                    "negative_price",
                    "amounts must not be negative".into(),
                );
            }
            if r.provider_id.as_ref().is_some_and(|p| p.trim().is_empty()) {
                push(
                    format!("{p}.provider_id"),
                    "empty",
                    "must not be empty when given".into(),
                );
            }
            if !crate::domain::usage::event::is_valid_ref_id(&r.id) {
                push(
                    format!("{p}.id"),
                    "invalid",
                    "must be 1 to 128 of A-Z a-z 0-9 _ - . : (it is part of the upfront invoice's id)".into(),
                );
            }
            if self.reservations[..i].iter().any(|o| o.same_purchase(r)) {
                push(
                    format!("{p}.id"),
                    "duplicate_reservation",
                    format!("reservation `{}` from {} is listed twice", r.id, r.term_start),
                );
            }
            let (up, monthly) = (r.upfront_amount > Decimal::ZERO, r.monthly_fee > Decimal::ZERO);
            let ok = match r.upfront {
                Upfront::All => up && !monthly,
                Upfront::Partial => up && monthly,
                Upfront::None => !up,
            };
            if !ok {
                push(
                    format!("{p}.upfront"),
                    "upfront_mismatch",
                    format!(
                        "upfront `{}` does not fit upfront_amount {} and monthly_fee {}",
                        r.upfront.as_str(),
                        r.upfront_amount,
                        r.monthly_fee
                    ),
                );
            }
        }
        if let Some(vd) = &self.volume_discount {
            for i in discount_rules(vd, "volume_discount") {
                push(i.path, i.code, i.message);
            }
            if vd.scope.is_some_and(|s| s != DiscountScope::Plan) {
                push(
                    "volume_discount.scope".into(),
                    "bad_scope",
                    "a plan's discount counts the plan's spend: `plan`".into(),
                );
            }
        }
        if let (Some(min), Some(max)) = (self.minimum, self.maximum) {
            if min > max {
                push(
                    "maximum".into(),
                    "min_above_max",
                    "the maximum is below the minimum".into(),
                );
            }
        }
        if v.is_empty() {
            Ok(())
        } else {
            Err(ValidationErrors(v))
        }
    }
}
