//! Helpers shared by the unit tests of the rating steps.

use super::lines::Lines;
use super::{RatingContext, UsageRow};
use crate::domain::meter::Meter;
use crate::domain::money::Currency;
use crate::domain::pricing::book::PriceBook;
use crate::domain::pricing::catalog::Catalog;
use crate::domain::pricing::dynamic::MarketFactors;
use crate::domain::pricing::period::Period;
use crate::domain::pricing::plan::Subscription;
use crate::domain::pricing::tax::{ResolvedTax, TaxTable, TaxTreatment};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde_json::{json, Value};

pub(super) fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

pub(super) fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

pub(super) fn jan() -> Period {
    Period::new(t("2026-01-01T00:00:00Z"), t("2026-02-01T00:00:00Z"))
}

/// Provider `provider`'s USD book `book-<provider>` v1 from 2026-01-01.
pub(super) fn book(provider: &str, prices: Value) -> PriceBook {
    serde_json::from_value(json!({
        "id": format!("book-{provider}"), "owner": {"kind": "provider", "id": provider},
        "currency": "USD", "version": 1, "effective_from": "2026-01-01T00:00:00Z", "prices": prices
    }))
    .unwrap()
}

pub(super) fn row(provider: &str, meter: Meter, at: &str, q: &str) -> UsageRow {
    UsageRow {
        provider_id: provider.into(),
        meter,
        dimensions: Default::default(),
        window_start: t(at),
        quantity: d(q),
    }
}

/// Runs `f` with a pay-per-use, untaxed context over `cat`.
pub(super) fn ctx_with<R>(cat: &Catalog, f: impl FnOnce(&RatingContext<'_>) -> R) -> R {
    let sub = Subscription::pay_per_use("acc");
    let taxes = TaxTable::default();
    let market = MarketFactors::default();
    f(&RatingContext {
        catalog: cat,
        subscription: &sub,
        taxes: &taxes,
        market: &market,
    })
}

/// An empty, untaxed USD line builder.
pub(super) fn lines_for(period: Period) -> Lines {
    Lines::new(
        Currency::USD,
        period,
        ResolvedTax {
            jurisdiction: None,
            rate: Decimal::ZERO,
            treatment: TaxTreatment::NotTaxed,
            note: None,
        },
    )
}
