//! Step 2 of rating: the usage lines. Reservations, then allowances, cover each group's usage in
//! the canonical order of the groups; what is left is priced at the allowance's overage price,
//! at the dynamic unit price, or by the price's charge model.

use super::group::{GroupKey, Grouped};
use super::lines::{Lines, UsageLine};
use super::LineKind;
use crate::domain::meter::Meter;
use crate::domain::pricing::book::ChargeModel;
use crate::domain::pricing::catalog::Catalog;
use crate::domain::pricing::charge::{charge, explain};
use crate::domain::pricing::period::Period;
use crate::domain::pricing::plan::Plan;
use rust_decimal::Decimal;

/// Each price's total of rounded usage amounts at book prices (not overage), per group key
/// without its dynamic unit price: what the price's minimum and maximum compare with.
pub(super) type PriceTotals = Vec<(GroupKey, Decimal)>;

/// Units that cover usage: (index in the plan's list, meter, the only provider covered if any,
/// units left).
type Pool<'p> = Vec<(usize, Meter, Option<&'p str>, Decimal)>;

/// The usage lines and what they leave for the later steps.
pub(super) struct Coverage {
    pub price_totals: PriceTotals,
    /// Units of each reservation in term left unused: (index in the plan's list, units).
    pub reserved_left: Vec<(usize, Decimal)>,
}

/// Makes the usage lines of every group.
pub(super) fn usage_lines(
    out: &mut Lines,
    cat: &Catalog,
    plan: &Plan,
    grouped: &Grouped<'_>,
    period: Period,
) -> Coverage {
    let mut reserved: Pool<'_> = plan
        .reservations
        .iter()
        .enumerate()
        .filter(|(_, r)| r.period_index(period.start).is_some())
        .map(|(i, r)| (i, r.meter, r.provider_id.as_deref(), r.units_per_period))
        .collect();
    let mut allowed: Pool<'_> = plan
        .allowances
        .iter()
        .enumerate()
        .map(|(i, a)| (i, a.meter, None, a.quantity))
        .collect();
    let mut price_totals = PriceTotals::new();
    for (key, acc) in &grouped.groups {
        let cb = &cat.books[key.book as usize];
        let base = UsageLine {
            provider: grouped.provider_names[key.provider as usize],
            book: &cb.book,
            price: cb.price(key.price),
            meter: cb.prices[key.price as usize].meter,
            acc,
        };
        let mut qty = acc.quantity;
        qty = cover(out, plan, &base, qty, LineKind::Reserved, &mut reserved);
        qty = cover(out, plan, &base, qty, LineKind::Included, &mut allowed);
        if qty <= Decimal::ZERO {
            continue;
        }
        if let Some(amount) = price_rest(out, plan, key, &base, qty) {
            add_price_total(&mut price_totals, key, amount);
        }
    }
    Coverage {
        price_totals,
        reserved_left: reserved.into_iter().map(|(i, _, _, left)| (i, left)).collect(),
    }
}

/// Covers what it can of `qty` from `pool` (reservations for [`LineKind::Reserved`], allowances
/// for [`LineKind::Included`]), one line at 0 per pool entry used; returns the rest.
fn cover(
    out: &mut Lines,
    plan: &Plan,
    base: &UsageLine<'_>,
    mut qty: Decimal,
    kind: LineKind,
    pool: &mut Pool<'_>,
) -> Decimal {
    let what = match kind {
        LineKind::Reserved => "reservation",
        _ => "allowance",
    };
    for (i, m, provider, remaining) in pool.iter_mut() {
        let other_provider = provider.is_some_and(|p| p != base.provider);
        if *m != base.meter || other_provider || qty <= Decimal::ZERO || *remaining <= Decimal::ZERO {
            continue;
        }
        let covered = qty.min(*remaining);
        *remaining -= covered;
        qty -= covered;
        let name = match kind {
            LineKind::Reserved => plan.reservations[*i].id.clone(),
            _ => format!("{}", plan.allowances[*i].meter),
        };
        let calc = format!(
            "{} {} covered by {what} {name}",
            covered.normalize(),
            base.meter.unit()
        );
        out.usage(
            base,
            kind,
            format!("{} covered by {what} {name}", base.title()),
            covered,
            Some(Decimal::ZERO),
            None,
            Vec::new(),
            Decimal::ZERO,
            base.book.tax_mode,
            &calc,
        );
    }
    qty
}

/// Prices usage no reservation or allowance covered. Returns its rounded amount when it was
/// priced at the book's price (it then counts towards the price's minimum and maximum), `None`
/// for overage at the plan's price.
fn price_rest(
    out: &mut Lines,
    plan: &Plan,
    key: &GroupKey,
    base: &UsageLine<'_>,
    qty: Decimal,
) -> Option<Decimal> {
    let mode = base.book.tax_mode;
    let overage = plan
        .allowances
        .iter()
        .find(|a| a.meter == base.meter)
        .and_then(|a| a.overage_unit_price);
    if let Some(op) = overage {
        let description = format!("{} beyond the allowance", base.title());
        let unrounded = qty * op;
        let calc = format!("{} × {op} (the plan's overage price)", qty.normalize());
        out.usage(
            base,
            LineKind::Overage,
            description,
            qty,
            Some(op),
            None,
            Vec::new(),
            unrounded,
            plan.tax_mode,
            &calc,
        );
        return None;
    }
    if let Some(unit) = key.unit {
        let mut calc = format!("{} × {unit}", qty.normalize());
        if let (Some(m), ChargeModel::PerUnit { unit_price }) = (key.multiplier, &base.price.model) {
            let clamped = (*unit_price * m).normalize() != unit;
            calc.push_str(&format!(" (base {unit_price} × multiplier {m}"));
            calc.push_str(if clamped {
                ", held to the spot floor or cap)"
            } else {
                ")"
            });
        }
        return Some(out.usage(
            base,
            LineKind::Usage,
            base.title(),
            qty,
            Some(unit),
            key.multiplier,
            Vec::new(),
            qty * unit,
            mode,
            &calc,
        ));
    }
    let c = charge(&base.price.model, qty);
    let calc = explain(&base.price.model, qty, &c);
    let unit = match &base.price.model {
        ChargeModel::PerUnit { unit_price } => Some(*unit_price),
        _ => None,
    };
    Some(out.usage(
        base,
        LineKind::Usage,
        base.title(),
        qty,
        unit,
        None,
        c.tiers,
        c.amount,
        mode,
        &calc,
    ))
}

/// Adds a line's amount to its price's total (groups of one price are adjacent in the canonical
/// order, so the last entry is the one to extend).
fn add_price_total(totals: &mut PriceTotals, key: &GroupKey, amount: Decimal) {
    let k = GroupKey {
        unit: None,
        multiplier: None,
        ..*key
    };
    match totals.last_mut() {
        Some((last, total)) if *last == k => *total += amount,
        _ => totals.push((k, amount)),
    }
}

#[cfg(test)]
mod tests {
    use super::super::group::group_rows;
    use super::super::tests::{book, ctx_with, d, jan, lines_for, row};
    use super::*;
    use crate::domain::pricing::plan::{Allowance, Reservation, Upfront};
    use serde_json::json;

    fn cpu_book() -> Catalog {
        Catalog::new(vec![book(
            "p1",
            json!([{"id": "cpu", "meter": "cpu_seconds", "model": {"type": "per_unit", "unit_price": "0.01"}}]),
        )])
        .unwrap()
    }

    fn reservation(units: &str) -> Reservation {
        Reservation {
            id: "r1".into(),
            meter: Meter::CpuSeconds,
            units_per_period: d(units),
            term_start: jan().start,
            term_months: 12,
            upfront: Upfront::None,
            upfront_amount: Decimal::ZERO,
            monthly_fee: Decimal::ZERO,
            provider_id: None,
            on_cancel: Default::default(),
        }
    }

    fn kinds_and_quantities(
        plan: &Plan,
        rows: &[super::super::UsageRow],
    ) -> Vec<(LineKind, Decimal, Decimal)> {
        let cat = cpu_book();
        ctx_with(&cat, |ctx| {
            let g = group_rows(ctx, rows, jan());
            let mut out = lines_for(jan());
            usage_lines(&mut out, &cat, plan, &g, jan());
            out.lines.iter().map(|l| (l.kind, l.quantity, l.amount)).collect()
        })
    }

    #[test]
    fn reservations_cover_first_then_allowances_then_the_book_price() {
        let plan = Plan {
            reservations: vec![reservation("100")],
            allowances: vec![Allowance {
                meter: Meter::CpuSeconds,
                quantity: d("50"),
                overage_unit_price: None,
            }],
            ..Plan::default()
        };
        let rows = [row("p1", Meter::CpuSeconds, "2026-01-05T00:00:00Z", "400")];
        assert_eq!(
            kinds_and_quantities(&plan, &rows),
            vec![
                (LineKind::Reserved, d("100"), d("0.00")),
                (LineKind::Included, d("50"), d("0.00")),
                (LineKind::Usage, d("250"), d("2.50")),
            ]
        );
    }

    #[test]
    fn overage_is_priced_by_the_plan_and_left_out_of_the_price_totals() {
        let plan = Plan {
            allowances: vec![Allowance {
                meter: Meter::CpuSeconds,
                quantity: d("50"),
                overage_unit_price: Some(d("0.03")),
            }],
            ..Plan::default()
        };
        let rows = [row("p1", Meter::CpuSeconds, "2026-01-05T00:00:00Z", "150")];
        assert_eq!(
            kinds_and_quantities(&plan, &rows),
            vec![
                (LineKind::Included, d("50"), d("0.00")),
                (LineKind::Overage, d("100"), d("3.00")),
            ]
        );
        let cat = cpu_book();
        let totals = ctx_with(&cat, |ctx| {
            let g = group_rows(ctx, &rows, jan());
            usage_lines(&mut lines_for(jan()), &cat, &plan, &g, jan()).price_totals
        });
        assert!(totals.is_empty());
    }

    #[test]
    fn a_reservation_outside_its_term_covers_nothing() {
        let mut r = reservation("100");
        r.term_start = "2026-03-01T00:00:00Z".parse().unwrap();
        let plan = Plan {
            reservations: vec![r],
            ..Plan::default()
        };
        let rows = [row("p1", Meter::CpuSeconds, "2026-01-05T00:00:00Z", "40")];
        assert_eq!(
            kinds_and_quantities(&plan, &rows),
            vec![(LineKind::Usage, d("40"), d("0.40"))]
        );
    }

    #[test]
    fn price_totals_add_up_one_price_across_dynamic_unit_prices() {
        let mut totals = PriceTotals::new();
        let key = |unit: &str| GroupKey {
            provider: 0,
            book: 0,
            price: 1,
            unit: Some(d(unit)),
            multiplier: None,
        };
        add_price_total(&mut totals, &key("0.1"), d("1.00"));
        add_price_total(&mut totals, &key("0.2"), d("2.50"));
        add_price_total(
            &mut totals,
            &GroupKey {
                price: 2,
                ..key("0.1")
            },
            d("4.00"),
        );
        assert_eq!(totals.len(), 2);
        assert_eq!((totals[0].0.unit, totals[0].1), (None, d("3.50")));
        assert_eq!(totals[1].1, d("4.00"));
    }

    #[test]
    fn a_providers_reservation_covers_only_its_usage_and_leaves_the_rest_unused() {
        let mut r = reservation("100");
        r.provider_id = Some("p2".into());
        let plan = Plan {
            reservations: vec![r],
            ..Plan::default()
        };
        let cat = Catalog::new(vec![
            book(
                "p1",
                json!([{"id": "cpu", "meter": "cpu_seconds", "model": {"type": "per_unit", "unit_price": "0.01"}}]),
            ),
            book(
                "p2",
                json!([{"id": "cpu", "meter": "cpu_seconds", "model": {"type": "per_unit", "unit_price": "0.02"}}]),
            ),
        ])
        .unwrap();
        let rows = [
            row("p1", Meter::CpuSeconds, "2026-01-05T00:00:00Z", "50"),
            row("p2", Meter::CpuSeconds, "2026-01-05T00:00:00Z", "30"),
        ];
        let (lines, left) = ctx_with(&cat, |ctx| {
            let g = group_rows(ctx, &rows, jan());
            let mut out = lines_for(jan());
            let c = usage_lines(&mut out, &cat, &plan, &g, jan());
            (out.lines, c.reserved_left)
        });
        let got: Vec<(Option<&str>, LineKind, Decimal)> = lines
            .iter()
            .map(|l| (l.provider_id.as_deref(), l.kind, l.amount))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some("p1"), LineKind::Usage, d("0.50")),
                (Some("p2"), LineKind::Reserved, d("0.00")),
            ]
        );
        assert_eq!(left, vec![(0, d("70"))]);
        assert_eq!(lines[1].calculation, "30 s covered by reservation r1 = 0.00");
    }
}
