//! Tax: effective-dated rates per jurisdiction, the customer's tax position, per-line tax, the
//! invoice breakdown and the tax report. See `docs/money.md` for the rounding rules.

use super::period::Period;
use super::rate::LineItem;
use crate::domain::money::Currency;
use crate::domain::parse::{decimal, instant, opt_instant};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A country (ISO 3166-1 alpha-2) and optionally a region within it (`US`/`CA`, `DE`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jurisdiction {
    pub country: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
}

/// A tax rate (a fraction: `0.19` is 19 %) in force in a jurisdiction over
/// `[effective_from, effective_to)`. Written and read flat: `{"country", "region", "name",
/// "rate", "effective_from", "effective_to"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "TaxRateDoc")]
pub struct TaxRate {
    #[serde(flatten)]
    pub jurisdiction: Jurisdiction,
    pub name: String,
    pub rate: Decimal,
    pub effective_from: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effective_to: Option<DateTime<Utc>>,
}

/// A tax rate as written, read strictly (serde cannot refuse unknown fields next to a
/// flattened one).
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TaxRateDoc {
    country: String,
    #[serde(default)]
    region: Option<String>,
    name: String,
    #[serde(with = "decimal")]
    rate: Decimal,
    #[serde(with = "instant")]
    effective_from: DateTime<Utc>,
    #[serde(default, with = "opt_instant")]
    effective_to: Option<DateTime<Utc>>,
}

impl From<TaxRateDoc> for TaxRate {
    fn from(d: TaxRateDoc) -> TaxRate {
        TaxRate {
            jurisdiction: Jurisdiction {
                country: d.country,
                region: d.region,
            },
            name: d.name,
            rate: d.rate,
            effective_from: d.effective_from,
            effective_to: d.effective_to,
        }
    }
}

/// All known tax rates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaxTable {
    pub rates: Vec<TaxRate>,
}

impl TaxTable {
    /// The rate in force at `at`: the region's own rate if it has one, else the country's.
    pub fn rate_at(&self, j: &Jurisdiction, at: DateTime<Utc>) -> Option<&TaxRate> {
        let in_force = |r: &&TaxRate| r.effective_from <= at && r.effective_to.is_none_or(|to| at < to);
        let exact = self.rates.iter().filter(in_force).find(|r| r.jurisdiction == *j);
        exact.or_else(|| {
            self.rates
                .iter()
                .filter(in_force)
                .find(|r| r.jurisdiction.country == j.country && r.jurisdiction.region.is_none())
        })
    }
}

/// The customer's tax position.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TaxProfile {
    /// Where the supply is taxed. `None`: no tax is computed (lines are `not_taxed`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<Jurisdiction>,
    /// An exemption certificate reference; the account is charged no tax.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exemption: Option<String>,
    /// A business customer that accounts for the tax itself (B2B reverse charge), with its tax id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reverse_charge_tax_id: Option<String>,
}

/// Why a line carries the tax it does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaxTreatment {
    Standard,
    Exempt,
    ReverseCharge,
    NotTaxed,
}

/// The legal note printed on reverse-charge lines.
pub const REVERSE_CHARGE_NOTE: &str =
    "Reverse charge: VAT to be accounted for by the recipient (Article 196, Council Directive 2006/112/EC)";

/// The tax that applies to an account at a tax point.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedTax {
    pub jurisdiction: Option<Jurisdiction>,
    pub rate: Decimal,
    pub treatment: TaxTreatment,
    pub note: Option<String>,
}

/// The customer's jurisdiction has no rate in force at the tax point.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("no tax rate for {country}{} at {at}", .region.as_ref().map(|r| format!("/{r}")).unwrap_or_default())]
pub struct NoTaxRate {
    pub country: String,
    pub region: Option<String>,
    pub at: DateTime<Utc>,
}

impl TaxProfile {
    /// Resolves the rate and treatment at the tax point `at`.
    pub fn resolve(&self, table: &TaxTable, at: DateTime<Utc>) -> Result<ResolvedTax, NoTaxRate> {
        let Some(j) = &self.jurisdiction else {
            return Ok(ResolvedTax {
                jurisdiction: None,
                rate: Decimal::ZERO,
                treatment: TaxTreatment::NotTaxed,
                note: None,
            });
        };
        let zero = |treatment, note: String| ResolvedTax {
            jurisdiction: Some(j.clone()),
            rate: Decimal::ZERO,
            treatment,
            note: Some(note),
        };
        if let Some(reference) = &self.exemption {
            return Ok(zero(
                TaxTreatment::Exempt,
                format!("Exempt from tax (exemption {reference})"),
            ));
        }
        if let Some(id) = &self.reverse_charge_tax_id {
            return Ok(zero(
                TaxTreatment::ReverseCharge,
                format!("{REVERSE_CHARGE_NOTE}; customer tax id {id}"),
            ));
        }
        let rate = table.rate_at(j, at).ok_or_else(|| NoTaxRate {
            country: j.country.clone(),
            region: j.region.clone(),
            at,
        })?;
        Ok(ResolvedTax {
            jurisdiction: Some(rate.jurisdiction.clone()),
            rate: rate.rate,
            treatment: TaxTreatment::Standard,
            note: None,
        })
    }
}

/// The tax on one line. `net + tax == gross` always; `amount` of the line is `gross` for
/// tax-inclusive prices and `net` for tax-exclusive ones.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineTax {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<Jurisdiction>,
    #[serde(with = "rust_decimal::serde::str")]
    pub rate: Decimal,
    pub treatment: TaxTreatment,
    pub inclusive: bool,
    #[serde(with = "rust_decimal::serde::str")]
    pub net: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub tax: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub gross: Decimal,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// Taxes a rounded line amount.
///
/// * exclusive: `net = amount`, `tax = round(amount × rate)`, `gross = net + tax`;
/// * inclusive: `gross = amount`, `net = round(amount / (1 + rate))`, `tax = gross − net`,
///   so the split always adds back to the gross exactly.
pub fn tax_line(amount: Decimal, currency: Currency, inclusive: bool, t: &ResolvedTax) -> LineTax {
    let (net, tax, gross) = if inclusive {
        let net = currency.round(amount / (Decimal::ONE + t.rate));
        (net, amount - net, amount)
    } else {
        let tax = currency.round(amount * t.rate);
        (amount, tax, amount + tax)
    };
    LineTax {
        jurisdiction: t.jurisdiction.clone(),
        rate: t.rate,
        treatment: t.treatment,
        inclusive,
        net,
        tax,
        gross,
        note: t.note.clone(),
    }
}

/// Invoice-level tax per jurisdiction, rate and treatment: sums of the lines' rounded values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxBreakdownRow {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<Jurisdiction>,
    #[serde(with = "rust_decimal::serde::str")]
    pub rate: Decimal,
    pub treatment: TaxTreatment,
    #[serde(with = "rust_decimal::serde::str")]
    pub taxable: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub tax: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub gross: Decimal,
}

type BreakdownKey = (Option<Jurisdiction>, Decimal, TaxTreatment);

/// Groups the lines' taxes by jurisdiction, rate and treatment, in that order.
pub fn tax_breakdown<'a>(lines: impl IntoIterator<Item = &'a LineItem>) -> Vec<TaxBreakdownRow> {
    let mut by: BTreeMap<BreakdownKey, (Decimal, Decimal, Decimal)> = BTreeMap::new();
    for l in lines {
        let e = by
            .entry((
                l.tax.jurisdiction.clone(),
                l.tax.rate.normalize(),
                l.tax.treatment,
            ))
            .or_default();
        e.0 += l.tax.net;
        e.1 += l.tax.tax;
        e.2 += l.tax.gross;
    }
    by.into_iter()
        .map(
            |((jurisdiction, rate, treatment), (taxable, tax, gross))| TaxBreakdownRow {
                jurisdiction,
                rate,
                treatment,
                taxable,
                tax,
                gross,
            },
        )
        .collect()
}

/// One row of the tax report: what was taxable and what tax was collected, per billing period,
/// currency, jurisdiction, rate and treatment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxReportRow {
    pub period: Period,
    pub currency: Currency,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jurisdiction: Option<Jurisdiction>,
    #[serde(with = "rust_decimal::serde::str")]
    pub rate: Decimal,
    pub treatment: TaxTreatment,
    #[serde(with = "rust_decimal::serde::str")]
    pub taxable: Decimal,
    #[serde(with = "rust_decimal::serde::str")]
    pub tax: Decimal,
}

/// The tax report, derived straight from rated lines (of any number of invoices).
pub fn tax_report<'a>(lines: impl IntoIterator<Item = &'a LineItem>) -> Vec<TaxReportRow> {
    type Key = (Period, &'static str, Option<Jurisdiction>, Decimal, TaxTreatment);
    let mut by: BTreeMap<Key, (Currency, Decimal, Decimal)> = BTreeMap::new();
    for l in lines {
        let key = (
            l.period,
            l.currency.code(),
            l.tax.jurisdiction.clone(),
            l.tax.rate.normalize(),
            l.tax.treatment,
        );
        let e = by
            .entry(key)
            .or_insert((l.currency, Decimal::ZERO, Decimal::ZERO));
        e.1 += l.tax.net;
        e.2 += l.tax.tax;
    }
    by.into_iter()
        .map(
            |((period, _, jurisdiction, rate, treatment), (currency, taxable, tax))| TaxReportRow {
                period,
                currency,
                jurisdiction,
                rate,
                treatment,
                taxable,
                tax,
            },
        )
        .collect()
}
