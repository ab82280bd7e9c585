//! The lines being built: each rounded once and taxed as it is made.

use super::group::Acc;
use super::{BookRef, LineItem, LineKind};
use crate::domain::meter::Meter;
use crate::domain::money::Currency;
use crate::domain::pricing::book::{Price, PriceBook, TaxMode};
use crate::domain::pricing::charge::TierApplied;
use crate::domain::pricing::period::Period;
use crate::domain::pricing::tax::{tax_line, ResolvedTax};
use crate::domain::usage::Dimensions;
use rust_decimal::Decimal;

/// `calc = unrounded → amount`, or `calc = amount` when rounding changed nothing.
pub(super) fn calculation(calc: &str, unrounded: Decimal, amount: Decimal) -> String {
    if unrounded.normalize() == amount.normalize() {
        format!("{calc} = {amount}")
    } else {
        format!("{calc} = {} → {amount}", unrounded.normalize())
    }
}

pub(super) fn book_ref(b: &PriceBook) -> BookRef {
    BookRef {
        id: b.id.clone(),
        version: b.version,
        owner: b.owner.clone(),
    }
}

/// The usage a line prices: whose, under which book and price, and when.
pub(super) struct UsageLine<'a> {
    pub provider: &'a str,
    pub book: &'a PriceBook,
    pub price: &'a Price,
    pub meter: Meter,
    pub acc: &'a Acc,
}

impl UsageLine<'_> {
    /// `meter filters (price id, book vversion)`.
    pub fn title(&self) -> String {
        let mut s = format!("{}", self.meter);
        for (k, v) in &self.price.filters {
            s.push_str(&format!(" {k}={v}"));
        }
        s.push_str(&format!(
            " (price {}, {} v{})",
            self.price.id, self.book.id, self.book.version
        ));
        s
    }
}

/// The lines of one rating, in the order they are made.
pub(super) struct Lines {
    pub currency: Currency,
    pub period: Period,
    pub tax: ResolvedTax,
    pub lines: Vec<LineItem>,
}

impl Lines {
    pub fn new(currency: Currency, period: Period, tax: ResolvedTax) -> Lines {
        Lines {
            currency,
            period,
            tax,
            lines: Vec::new(),
        }
    }

    /// A line without usage details: rounds once and taxes.
    pub fn plain(&self, kind: LineKind, description: String, unrounded: Decimal, mode: TaxMode) -> LineItem {
        let amount = self.currency.round(unrounded);
        LineItem {
            kind,
            description,
            provider_id: None,
            book: None,
            price_id: None,
            meter: None,
            dimensions: Dimensions::new(),
            quantity: Decimal::ZERO,
            unit: None,
            unit_price: None,
            multiplier: None,
            tiers: Vec::new(),
            discount_scope: None,
            usage_from: None,
            usage_to: None,
            period: self.period,
            currency: self.currency,
            unrounded,
            amount,
            calculation: String::new(),
            tax: tax_line(amount, self.currency, mode == TaxMode::Inclusive, &self.tax),
        }
    }

    /// Pushes a usage line and returns its rounded amount. `calc` is how `unrounded` follows
    /// from the quantity (`q × p`, the tiers, ...).
    #[allow(clippy::too_many_arguments)]
    pub fn usage(
        &mut self,
        u: &UsageLine<'_>,
        kind: LineKind,
        description: String,
        quantity: Decimal,
        unit_price: Option<Decimal>,
        multiplier: Option<Decimal>,
        tiers: Vec<TierApplied>,
        unrounded: Decimal,
        mode: TaxMode,
        calc: &str,
    ) -> Decimal {
        let mut l = self.plain(kind, description, unrounded, mode);
        l.unit = Some(u.meter.unit().to_string());
        l.calculation = calculation(calc, unrounded, l.amount);
        l.provider_id = Some(u.provider.to_string());
        l.book = Some(book_ref(u.book));
        l.price_id = Some(u.price.id.clone());
        l.meter = Some(u.meter);
        l.dimensions = u.price.filters.clone();
        l.quantity = quantity;
        l.unit_price = unit_price;
        l.multiplier = multiplier;
        l.tiers = tiers;
        l.usage_from = Some(u.acc.first);
        l.usage_to = Some(u.acc.last);
        let amount = l.amount;
        self.lines.push(l);
        amount
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{d, jan, t};
    use super::*;
    use crate::domain::pricing::tax::TaxTreatment;

    fn taxed(rate: &str) -> Lines {
        let tax = ResolvedTax {
            jurisdiction: None,
            rate: d(rate),
            treatment: TaxTreatment::Standard,
            note: None,
        };
        Lines::new(Currency::USD, jan(), tax)
    }

    #[test]
    fn a_plain_line_is_rounded_once_and_taxed_by_its_mode() {
        let out = taxed("0.19");
        let l = out.plain(
            LineKind::RecurringFee,
            "fee".into(),
            d("10.005"),
            TaxMode::Exclusive,
        );
        assert_eq!((l.unrounded, l.amount), (d("10.005"), d("10.00")));
        assert_eq!(
            (l.tax.net, l.tax.tax, l.tax.gross),
            (d("10.00"), d("1.90"), d("11.90"))
        );
        let l = out.plain(
            LineKind::RecurringFee,
            "fee".into(),
            d("11.90"),
            TaxMode::Inclusive,
        );
        assert_eq!(
            (l.tax.net, l.tax.tax, l.tax.gross),
            (d("10.00"), d("1.90"), d("11.90"))
        );
        assert_eq!(l.period, jan());
    }

    #[test]
    fn a_usage_line_carries_its_price_and_span() {
        let book: PriceBook = serde_json::from_value(serde_json::json!({
            "id": "b", "owner": {"kind": "provider", "id": "p1"}, "currency": "USD", "version": 3,
            "effective_from": "2026-01-01T00:00:00Z",
            "prices": [{"id": "h100", "meter": "gpu_seconds", "filters": {"gpu_model": "H100"},
                "model": {"type": "per_unit", "unit_price": "0.002"}}]
        }))
        .unwrap();
        let acc = Acc {
            quantity: d("10"),
            first: t("2026-01-02T00:00:00Z"),
            last: t("2026-01-04T00:00:00Z"),
        };
        let u = UsageLine {
            provider: "p1",
            book: &book,
            price: &book.prices[0],
            meter: Meter::GpuSeconds,
            acc: &acc,
        };
        assert_eq!(u.title(), "gpu_seconds gpu_model=H100 (price h100, b v3)");
        let mut out = taxed("0");
        let amount = out.usage(
            &u,
            LineKind::Usage,
            u.title(),
            d("10"),
            Some(d("0.002")),
            None,
            Vec::new(),
            d("0.02"),
            TaxMode::Exclusive,
            "10 × 0.002",
        );
        assert_eq!(amount, d("0.02"));
        let l = &out.lines[0];
        assert_eq!(l.provider_id.as_deref(), Some("p1"));
        assert_eq!(l.book.as_ref().map(|b| b.version), Some(3));
        assert_eq!(l.dimensions.get("gpu_model").map(String::as_str), Some("H100"));
        assert_eq!((l.usage_from, l.usage_to), (Some(acc.first), Some(acc.last)));
        assert_eq!(l.unit.as_deref(), Some("s"));
        assert_eq!(l.calculation, "10 × 0.002 = 0.02");
        assert_eq!(
            calculation("12345 × 0.0001", d("1.2345"), d("1.23")),
            "12345 × 0.0001 = 1.2345 → 1.23"
        );
    }
}
