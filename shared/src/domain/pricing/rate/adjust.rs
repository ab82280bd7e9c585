//! Steps 3 and 6 of rating: minimum and maximum adjustments. Each lands exactly on its target
//! because it is computed from rounded amounts (`docs/money.md`).

use super::cover::PriceTotals;
use super::lines::{book_ref, Lines};
use super::LineKind;
use crate::domain::pricing::catalog::Catalog;
use crate::domain::pricing::plan::Plan;
use rust_decimal::Decimal;

/// Per price, over the period: a line bringing its total up to its minimum or down to its
/// maximum.
pub(super) fn price_limits(
    out: &mut Lines,
    cat: &Catalog,
    provider_names: &[&str],
    price_totals: &PriceTotals,
) {
    let currency = out.currency;
    for (key, total) in price_totals {
        let cb = &cat.books[key.book as usize];
        let price = cb.price(key.price);
        let (kind, target) = match (price.minimum, price.maximum) {
            (Some(min), _) if *total < currency.round(min) => (LineKind::PriceMinimum, currency.round(min)),
            (_, Some(max)) if *total > currency.round(max) => (LineKind::PriceMaximum, currency.round(max)),
            _ => continue,
        };
        let what = if kind == LineKind::PriceMinimum {
            "minimum"
        } else {
            "maximum"
        };
        let mut l = out.plain(
            kind,
            format!("{} {what} {target} for price {}", price.meter, price.id),
            target - total,
            cb.book.tax_mode,
        );
        l.provider_id = Some(provider_names[key.provider as usize].to_string());
        l.book = Some(book_ref(&cb.book));
        l.price_id = Some(price.id.clone());
        l.meter = Some(cb.prices[key.price as usize].meter);
        l.dimensions = price.filters.clone();
        out.lines.push(l);
    }
}

/// Over the whole invoice: a line bringing the subtotal up to the plan's minimum or down to its
/// maximum.
pub(super) fn plan_limits(out: &mut Lines, plan: &Plan) {
    let currency = out.currency;
    let subtotal: Decimal = out.lines.iter().map(|l| l.amount).sum();
    let adjust = match (plan.minimum, plan.maximum) {
        (Some(min), _) if subtotal < currency.round(min) => {
            Some((LineKind::PlanMinimum, currency.round(min), "minimum"))
        }
        (_, Some(max)) if subtotal > currency.round(max) => {
            Some((LineKind::PlanMaximum, currency.round(max), "maximum"))
        }
        _ => None,
    };
    if let Some((kind, target, what)) = adjust {
        let l = out.plain(
            kind,
            format!("plan {what} {target}"),
            target - subtotal,
            plan.tax_mode,
        );
        out.lines.push(l);
    }
}

#[cfg(test)]
mod tests {
    use super::super::group::GroupKey;
    use super::super::tests::{book, d, jan, lines_for};
    use super::*;
    use crate::domain::pricing::book::TaxMode;
    use serde_json::json;

    fn limited() -> Catalog {
        Catalog::new(vec![book(
            "p1",
            json!([{"id": "mem", "meter": "memory_gib_seconds", "minimum": "2.00", "maximum": "10.00",
                "model": {"type": "per_unit", "unit_price": "0.10"}}]),
        )])
        .unwrap()
    }

    fn key() -> GroupKey {
        GroupKey {
            provider: 0,
            book: 0,
            price: 0,
            unit: None,
            multiplier: None,
        }
    }

    fn adjustments(total: &str) -> Vec<(LineKind, Decimal)> {
        let mut out = lines_for(jan());
        price_limits(&mut out, &limited(), &["p1"], &vec![(key(), d(total))]);
        out.lines.iter().map(|l| (l.kind, l.amount)).collect()
    }

    #[test]
    fn a_price_below_its_minimum_or_above_its_maximum_is_adjusted_to_it() {
        assert_eq!(adjustments("0.30"), vec![(LineKind::PriceMinimum, d("1.70"))]);
        assert_eq!(adjustments("25.00"), vec![(LineKind::PriceMaximum, d("-15.00"))]);
        assert_eq!(adjustments("5.00"), vec![]);
        let mut out = lines_for(jan());
        price_limits(&mut out, &limited(), &["p1"], &vec![(key(), d("0.30"))]);
        let l = &out.lines[0];
        assert_eq!(
            (l.provider_id.as_deref(), l.price_id.as_deref()),
            (Some("p1"), Some("mem"))
        );
    }

    #[test]
    fn the_plan_minimum_and_maximum_apply_to_the_subtotal() {
        let plan = |min: Option<&str>, max: Option<&str>| Plan {
            minimum: min.map(d),
            maximum: max.map(d),
            ..Plan::default()
        };
        let run = |p: &Plan, amount: &str| {
            let mut out = lines_for(jan());
            let l = out.plain(LineKind::Usage, "u".into(), d(amount), TaxMode::Exclusive);
            out.lines.push(l);
            plan_limits(&mut out, p);
            out.lines[1..]
                .iter()
                .map(|l| (l.kind, l.amount))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            run(&plan(Some("20"), None), "7.25"),
            vec![(LineKind::PlanMinimum, d("12.75"))]
        );
        assert_eq!(
            run(&plan(None, Some("5")), "7.25"),
            vec![(LineKind::PlanMaximum, d("-2.25"))]
        );
        assert!(run(&plan(Some("1"), Some("10")), "7.25").is_empty());
    }
}
