//! A small, realistic billing setup: two providers' price books and the marketplace's, tax
//! rates, fees, an account and a monthly subscription. Used by tests, benchmarks and the demo's
//! seed (`meterline billing-sample`), so they all bill the same way.

// Cannot fail: fixed sample data (constants below), parsed and checked by the unit tests.
#![allow(clippy::expect_used)]

use super::close::{Account, BillingSubscription};
use super::cycle::{Alignment, BillingSchedule, Cadence};
use super::invoice::InvoiceNumbering;
use super::overdue::{LateFee, OverduePolicy, PaymentTerms};
use crate::domain::money::{Currency, Money};
use crate::domain::pricing::CatalogData;
use crate::domain::pricing::{Jurisdiction, Plan, PriceBook, TaxProfile};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// Price books in USD from 2020: `prov_000` (per-unit CPU, graduated GPU with an H100 price),
/// `prov_001` (its own CPU price) and the marketplace's book for every meter (used by any other
/// provider and for prices a provider's book lacks).
pub fn catalog() -> CatalogData {
    let books: Vec<PriceBook> = serde_json::from_str(BOOKS).expect("sample price books parse");
    let taxes = serde_json::from_str(TAXES).expect("sample taxes parse");
    let fees = BTreeMap::from([
        ("prov_000".to_string(), Decimal::new(15, 0)),
        ("prov_001".to_string(), Decimal::new(125, 1)),
        ("prov_002".to_string(), Decimal::new(10, 0)),
        ("prov_003".to_string(), Decimal::new(20, 0)),
    ]);
    CatalogData {
        books,
        taxes,
        fees,
        upfront_payouts: BTreeMap::new(),
    }
}

/// An account invoiced in `currency`, Berlin time, net 14 with 3 days' grace and a 1.5 % late
/// fee capped at 50, paying automatically, taxed in Germany.
pub fn account(account_id: &str, currency: Currency) -> Account {
    Account {
        account_id: account_id.to_string(),
        currency,
        timezone: chrono_tz::Europe::Berlin,
        policy: OverduePolicy {
            terms: PaymentTerms::Net { days: 14 },
            grace_days: 3,
            late_fee: Some(LateFee::Percentage {
                percent: Decimal::new(15, 1),
                cap: Some(Money::new(currency.round(Decimal::from(50)), currency)),
            }),
            fee_every_days: Some(30),
        },
        auto_pay: true,
        tax: TaxProfile {
            jurisdiction: Some(Jurisdiction {
                country: "DE".into(),
                region: None,
            }),
            exemption: None,
            reverse_charge_tax_id: None,
        },
        issuer: InvoiceNumbering::new("ML").expect("valid prefix"),
        credit_balance: Money::zero(currency),
    }
}

/// A subscription with a 10.00 monthly platform fee and 3,600 CPU-seconds included, on
/// `cadence`, calendar-aligned in Berlin time, from `start`.
pub fn subscription(
    subscription_id: &str,
    account_id: &str,
    cadence: Cadence,
    start: DateTime<Utc>,
) -> BillingSubscription {
    let plan: Plan = serde_json::from_str(
        r#"{"name": "Builder", "recurring_fee": "10.00",
            "allowances": [{"meter": "cpu_seconds", "quantity": "3600"}]}"#,
    )
    .expect("sample plan parses");
    let schedule = BillingSchedule::new(cadence, Alignment::Calendar, start, chrono_tz::Europe::Berlin);
    BillingSubscription::new(subscription_id, account_id, schedule, plan).expect("valid schedule")
}

const TAXES: &str = r#"{"rates": [
  {"country": "DE", "name": "USt", "rate": "0.19", "effective_from": "2020-01-01T00:00:00Z"}
]}"#;

const BOOKS: &str = r#"[
{
  "id": "prov-000-usd", "owner": {"kind": "provider", "id": "prov_000"}, "currency": "USD",
  "version": 1, "effective_from": "2020-01-01T00:00:00Z", "tax_mode": "exclusive",
  "prices": [
    {"id": "cpu", "meter": "cpu_seconds", "model": {"type": "per_unit", "unit_price": "0.00002"}},
    {"id": "gpu", "meter": "gpu_seconds", "model": {"type": "graduated", "tiers": [
      {"from": "0", "up_to": "36000", "unit_price": "0.0008"},
      {"from": "36000", "unit_price": "0.0006"}]}},
    {"id": "gpu-h100", "meter": "gpu_seconds", "filters": {"gpu_model": "H100"},
     "model": {"type": "per_unit", "unit_price": "0.0011"}}
  ]
},
{
  "id": "prov-001-usd", "owner": {"kind": "provider", "id": "prov_001"}, "currency": "USD",
  "version": 1, "effective_from": "2020-01-01T00:00:00Z", "tax_mode": "exclusive",
  "prices": [
    {"id": "cpu", "meter": "cpu_seconds", "model": {"type": "per_unit", "unit_price": "0.000018"}}
  ]
},
{
  "id": "marketplace-usd", "owner": {"kind": "marketplace"}, "currency": "USD",
  "version": 1, "effective_from": "2020-01-01T00:00:00Z", "tax_mode": "exclusive",
  "prices": [
    {"id": "cpu", "meter": "cpu_seconds", "model": {"type": "per_unit", "unit_price": "0.000025"}},
    {"id": "gpu", "meter": "gpu_seconds", "model": {"type": "per_unit", "unit_price": "0.0009"}},
    {"id": "memory", "meter": "memory_gib_seconds", "model": {"type": "per_unit", "unit_price": "0.0000011"}},
    {"id": "storage", "meter": "storage_gib_hours", "model": {"type": "per_unit", "unit_price": "0.00014"}},
    {"id": "egress", "meter": "network_egress_gib", "model": {"type": "per_unit", "unit_price": "0.09"}},
    {"id": "ingress", "meter": "network_ingress_gib", "model": {"type": "per_unit", "unit_price": "0"}},
    {"id": "wall", "meter": "wall_seconds", "model": {"type": "per_unit", "unit_price": "0.000001"}}
  ]
}
]"#;
