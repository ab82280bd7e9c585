//! Step 4 of rating: volume discounts. Each counts the spend before any discount: the rounded
//! usage lines (not overage, nor what reservations and allowances covered) and the price
//! minimum and maximum adjustments, of one meter when the discount names one.
//!
//! * a book's discount (scope `book`): per provider and book version, one line;
//! * the marketplace's (a marketplace book's discount of scope `marketplace`, the version in
//!   force at the period's last instant) and the plan's (scope `plan`): over every provider's
//!   spend, rounded once, then split across the providers in proportion to their spend by the
//!   largest remainder ([`crate::domain::money::Currency::split`]): one line per provider, its
//!   share, so each provider's statement carries its part of the cost.

use super::group::Grouped;
use super::lines::{book_ref, calculation, Lines};
use super::{LineItem, LineKind};
use crate::domain::meter::Meter;
use crate::domain::money::format_percent;
use crate::domain::pricing::book::{
    DiscountBasis, DiscountMethod, DiscountScope, PriceBook, TaxMode, VolumeDiscount,
};
use crate::domain::pricing::catalog::Catalog;
use crate::domain::pricing::plan::Plan;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// The discount lines, after the lines already made.
pub(super) fn volume_discounts(out: &mut Lines, cat: &Catalog, plan: &Plan, grouped: &Grouped<'_>) {
    let mut discounts = book_discounts(out, cat, grouped);
    let last = out.period.end - chrono::TimeDelta::nanoseconds(1);
    if let Some(b) = cat.marketplace_book(last) {
        let book = &cat.books[b as usize].book;
        if let Some(vd) = book
            .volume_discount
            .as_ref()
            .filter(|vd| vd.scope == Some(DiscountScope::Marketplace))
        {
            discounts.extend(shared_discount(
                out,
                vd,
                DiscountScope::Marketplace,
                Some(book),
                book.tax_mode,
            ));
        }
    }
    if let Some(vd) = &plan.volume_discount {
        discounts.extend(shared_discount(out, vd, DiscountScope::Plan, None, plan.tax_mode));
    }
    out.lines.extend(discounts);
}

/// One line per provider and book version with a book's discount and a non-zero discount.
fn book_discounts(out: &Lines, cat: &Catalog, grouped: &Grouped<'_>) -> Vec<LineItem> {
    let mut seen: Vec<(String, u32)> = Vec::new();
    let mut discounts = Vec::new();
    for (key, _) in &grouped.groups {
        let cb = &cat.books[key.book as usize];
        let Some(vd) = &cb.book.volume_discount else {
            continue;
        };
        if vd.scope.is_some_and(|s| s != DiscountScope::Book) {
            continue;
        }
        let provider = grouped.provider_names[key.provider as usize];
        if seen.iter().any(|(p, b)| p == provider && *b == key.book) {
            continue;
        }
        seen.push((provider.to_string(), key.book));
        if let Some(l) = discount_line(out, provider, &cb.book, vd) {
            discounts.push(l);
        }
    }
    discounts
}

/// The discount line of one provider's usage under one book version, if there is a discount.
fn discount_line(out: &Lines, provider: &str, book: &PriceBook, vd: &VolumeDiscount) -> Option<LineItem> {
    let meter: Option<Meter> = vd.meter.as_ref().and_then(|m| m.parse().ok());
    let (spend, quantity) = discounted_spend(&out.lines, provider, book, meter);
    let discount = volume_discount(vd, spend, quantity);
    if discount.is_zero() {
        return None;
    }
    let mut l = out.plain(
        LineKind::VolumeDiscount,
        format!(
            "volume discount ({:?}, {:?}) on {spend} spend / {quantity} units",
            vd.basis, vd.method
        )
        .to_lowercase(),
        -discount,
        book.tax_mode,
    );
    l.provider_id = Some(provider.to_string());
    l.book = Some(book_ref(book));
    l.meter = meter;
    l.quantity = quantity;
    l.discount_scope = Some(DiscountScope::Book);
    l.calculation = calculation(&explain(vd, spend, quantity), -discount, l.amount);
    Some(l)
}

/// How a discount follows from the spend and quantity it counts: the thresholds reached.
fn explain(vd: &VolumeDiscount, spend: Decimal, quantity: Decimal) -> String {
    let basis = match vd.basis {
        DiscountBasis::Spend => format!("spend {spend}"),
        DiscountBasis::Quantity => format!("{} units on spend {spend}", quantity.normalize()),
    };
    let bands: Vec<String> = vd
        .thresholds
        .iter()
        .map(|t| format!("{} from {}", format_percent(t.percent), t.from.normalize()))
        .collect();
    let method = match vd.method {
        DiscountMethod::Retroactive => "retroactive",
        DiscountMethod::Incremental => "incremental",
    };
    format!("−({method}: {} on {basis})", bands.join(", "))
}

/// A discount counted over every provider's spend, rounded once and split across the providers
/// in proportion to their spend (largest remainder): one line per provider with a share.
fn shared_discount(
    out: &Lines,
    vd: &VolumeDiscount,
    scope: DiscountScope,
    book: Option<&PriceBook>,
    mode: TaxMode,
) -> Vec<LineItem> {
    let meter: Option<Meter> = vd.meter.as_ref().and_then(|m| m.parse().ok());
    let per = spend_per_provider(&out.lines, meter);
    let spend: Decimal = per.values().map(|s| s.0).sum();
    let quantity: Decimal = per.values().map(|s| s.1).sum();
    let unrounded = volume_discount(vd, spend, quantity);
    let discount = out.currency.round(unrounded);
    let weights: Vec<Decimal> = per.values().map(|s| s.0.max(Decimal::ZERO)).collect();
    let Some(shares) = out
        .currency
        .split(discount, &weights)
        .filter(|_| !discount.is_zero())
    else {
        return Vec::new();
    };
    let what = match scope {
        DiscountScope::Marketplace => "marketplace volume discount",
        _ => "plan volume discount",
    };
    let whole = calculation(&explain(vd, spend, quantity), -unrounded, -discount);
    per.iter()
        .zip(shares)
        .filter(|(_, share)| !share.is_zero())
        .map(|((provider, (own, qty)), share)| {
            let mut l = out.plain(
                LineKind::VolumeDiscount,
                format!("{what}: share of {provider}, {own} of {spend} spend"),
                -share,
                mode,
            );
            l.provider_id = Some(provider.to_string());
            l.book = book.map(book_ref);
            l.meter = meter;
            l.quantity = *qty;
            l.discount_scope = Some(scope);
            l.calculation = format!("{whole}; split by spend: −{discount} × {own} / {spend} → −{share}");
            l
        })
        .collect()
}

/// Spend and usage quantity per provider over every book (see [`discounted_spend`]).
fn spend_per_provider(lines: &[LineItem], meter: Option<Meter>) -> BTreeMap<String, (Decimal, Decimal)> {
    let mut per: BTreeMap<String, (Decimal, Decimal)> = BTreeMap::new();
    for l in lines.iter().filter(|l| counts(l, meter)) {
        let Some(p) = &l.provider_id else {
            continue;
        };
        let e = per.entry(p.clone()).or_default();
        e.0 += l.amount;
        if l.kind == LineKind::Usage {
            e.1 += l.quantity;
        }
    }
    per
}

/// Whether a line is spend a discount counts: usage at book prices and price adjustments.
fn counts(l: &LineItem, meter: Option<Meter>) -> bool {
    matches!(
        l.kind,
        LineKind::Usage | LineKind::PriceMinimum | LineKind::PriceMaximum
    ) && meter.is_none_or(|m| l.meter == Some(m))
}

/// The spend (rounded usage lines and price adjustments) and the usage quantity of one provider
/// under one book version, of one meter if given.
fn discounted_spend(
    lines: &[LineItem],
    provider: &str,
    book: &PriceBook,
    meter: Option<Meter>,
) -> (Decimal, Decimal) {
    let (mut spend, mut quantity) = (Decimal::ZERO, Decimal::ZERO);
    for l in lines {
        let same = l.provider_id.as_deref() == Some(provider)
            && l.book
                .as_ref()
                .is_some_and(|b| b.id == book.id && b.version == book.version)
            && counts(l, meter);
        if same {
            spend += l.amount;
            if l.kind == LineKind::Usage {
                quantity += l.quantity;
            }
        }
    }
    (spend, quantity)
}

/// The discount (positive, full precision) for a period's spend and quantity.
///
/// * retroactive: `spend × p / 100` with `p` the percent of the highest threshold reached
///   (`basis ≥ from`);
/// * incremental by spend: each band `[from_i, from_i+1)` of the spend at its own percent;
/// * incremental by quantity: `spend × Σ(quantity in band × p) / (quantity × 100)`, i.e. the
///   spend is spread evenly over the quantity.
pub fn volume_discount(vd: &VolumeDiscount, spend: Decimal, quantity: Decimal) -> Decimal {
    let basis = match vd.basis {
        DiscountBasis::Spend => spend,
        DiscountBasis::Quantity => quantity,
    };
    if basis <= Decimal::ZERO || spend <= Decimal::ZERO {
        return Decimal::ZERO;
    }
    let hundred = Decimal::ONE_HUNDRED;
    match vd.method {
        DiscountMethod::Retroactive => vd
            .thresholds
            .iter()
            .rev()
            .find(|t| basis >= t.from)
            .map_or(Decimal::ZERO, |t| spend * t.percent / hundred),
        DiscountMethod::Incremental => {
            let mut weighted = Decimal::ZERO;
            for (i, t) in vd.thresholds.iter().enumerate() {
                if basis <= t.from {
                    break;
                }
                let top = vd.thresholds.get(i + 1).map_or(basis, |n| n.from.min(basis));
                weighted += (top - t.from) * t.percent;
            }
            match vd.basis {
                DiscountBasis::Spend => weighted / hundred,
                DiscountBasis::Quantity => spend * weighted / (quantity * hundred),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::group::group_rows;
    use super::super::tests::{book, ctx_with, d, jan, lines_for, row};
    use super::*;
    use serde_json::json;

    fn vd(basis: &str, method: &str) -> VolumeDiscount {
        serde_json::from_value(json!({"basis": basis, "method": method, "meter": "cpu_seconds",
            "thresholds": [{"from": "0", "percent": "0"}, {"from": "100", "percent": "5"},
                {"from": "500", "percent": "10"}]}))
        .unwrap()
    }

    #[test]
    fn discounts_by_basis_and_method() {
        assert_eq!(
            volume_discount(&vd("spend", "retroactive"), d("600"), d("600")),
            d("60")
        );
        assert_eq!(
            volume_discount(&vd("spend", "incremental"), d("600"), d("600")),
            d("30")
        );
        assert_eq!(
            volume_discount(&vd("quantity", "incremental"), d("750"), d("1500")),
            d("60")
        );
        assert_eq!(
            volume_discount(&vd("spend", "retroactive"), d("99"), d("0")),
            d("0")
        );
        assert_eq!(
            volume_discount(&vd("spend", "retroactive"), d("-5"), d("10")),
            d("0")
        );
    }

    #[test]
    fn the_spend_counts_usage_and_price_adjustments_of_one_provider_and_book() {
        let b = book("p1", json!([]));
        let mut out = lines_for(jan());
        let mut line = |kind: LineKind, provider: &str, amount: &str, qty: &str| {
            let mut l = out.plain(kind, String::new(), d(amount), TaxMode::Exclusive);
            l.provider_id = Some(provider.into());
            l.book = Some(book_ref(&b));
            l.meter = Some(Meter::CpuSeconds);
            l.quantity = d(qty);
            out.lines.push(l);
        };
        line(LineKind::Usage, "p1", "10.00", "100");
        line(LineKind::PriceMinimum, "p1", "2.00", "0");
        line(LineKind::Reserved, "p1", "0.00", "40");
        line(LineKind::Usage, "p2", "99.00", "9");
        assert_eq!(
            discounted_spend(&out.lines, "p1", &b, None),
            (d("12.00"), d("100"))
        );
        assert_eq!(
            discounted_spend(&out.lines, "p1", &b, Some(Meter::GpuSeconds)),
            (d("0"), d("0"))
        );
    }

    #[test]
    fn one_discount_line_per_provider_and_book_version() {
        let mut b = book(
            "p1",
            json!([{"id": "cpu", "meter": "cpu_seconds", "model": {"type": "per_unit", "unit_price": "1.00"}}]),
        );
        b.volume_discount = Some(vd("spend", "retroactive"));
        let cat = Catalog::new(vec![b]).unwrap();
        let rows = [
            row("p1", Meter::CpuSeconds, "2026-01-05T00:00:00Z", "300"),
            row("p1", Meter::CpuSeconds, "2026-01-06T00:00:00Z", "300"),
        ];
        let lines = ctx_with(&cat, |ctx| {
            let g = group_rows(ctx, &rows, jan());
            let mut out = lines_for(jan());
            super::super::cover::usage_lines(&mut out, &cat, &Default::default(), &g, jan());
            volume_discounts(&mut out, &cat, &Plan::default(), &g);
            out.lines
        });
        let discounts: Vec<&LineItem> = lines
            .iter()
            .filter(|l| l.kind == LineKind::VolumeDiscount)
            .collect();
        assert_eq!(discounts.len(), 1);
        assert_eq!(discounts[0].amount, d("-60.00"));
        assert_eq!(discounts[0].quantity, d("600"));
    }

    #[test]
    fn a_plan_discount_is_counted_over_every_provider_and_split_by_spend() {
        let cat = Catalog::new(vec![
            book(
                "p1",
                json!([{"id": "cpu", "meter": "cpu_seconds", "model": {"type": "per_unit", "unit_price": "1.00"}}]),
            ),
            book(
                "p2",
                json!([{"id": "cpu", "meter": "cpu_seconds", "model": {"type": "per_unit", "unit_price": "1.00"}}]),
            ),
        ])
        .unwrap();
        let mut plan = Plan::default();
        let mut d10 = vd("spend", "retroactive");
        d10.meter = None;
        plan.volume_discount = Some(d10);
        let rows = [
            row("p1", Meter::CpuSeconds, "2026-01-05T00:00:00Z", "400"),
            row("p2", Meter::CpuSeconds, "2026-01-05T00:00:00Z", "200"),
        ];
        let lines = ctx_with(&cat, |ctx| {
            let g = group_rows(ctx, &rows, jan());
            let mut out = lines_for(jan());
            super::super::cover::usage_lines(&mut out, &cat, &plan, &g, jan());
            volume_discounts(&mut out, &cat, &plan, &g);
            out.lines
        });
        let got: Vec<(Option<&str>, Decimal, Option<DiscountScope>)> = lines
            .iter()
            .filter(|l| l.kind == LineKind::VolumeDiscount)
            .map(|l| (l.provider_id.as_deref(), l.amount, l.discount_scope))
            .collect();
        // 600.00 spend reaches 10 %: 60.00, split 400 : 200.
        assert_eq!(
            got,
            vec![
                (Some("p1"), d("-40.00"), Some(DiscountScope::Plan)),
                (Some("p2"), d("-20.00"), Some(DiscountScope::Plan)),
            ]
        );
        assert!(
            lines[2].calculation.contains("split by spend"),
            "{}",
            lines[2].calculation
        );
    }

    #[test]
    fn scopes_are_checked_where_they_are_given() {
        let mut b = book("p1", json!([]));
        let mut d = vd("spend", "retroactive");
        d.scope = Some(DiscountScope::Marketplace);
        b.volume_discount = Some(d.clone());
        let issues = crate::domain::pricing::validate_book(&b).unwrap_err();
        assert_eq!(issues.0[0].path, "volume_discount.scope");
        let plan = Plan {
            volume_discount: Some(d),
            ..Plan::default()
        };
        let issues = plan.validate().unwrap_err();
        assert_eq!(issues.0[0].code, "bad_scope");
    }
}
