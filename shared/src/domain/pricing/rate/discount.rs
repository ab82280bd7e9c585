//! Step 4 of rating: volume discounts, per provider and book version.

use super::group::Grouped;
use super::lines::{book_ref, Lines};
use super::{LineItem, LineKind};
use crate::domain::meter::Meter;
use crate::domain::pricing::book::{DiscountBasis, DiscountMethod, PriceBook, VolumeDiscount};
use crate::domain::pricing::catalog::Catalog;
use rust_decimal::Decimal;

/// One discount line per provider and book version with a volume discount and a non-zero
/// discount, after the lines already made.
pub(super) fn volume_discounts(out: &mut Lines, cat: &Catalog, grouped: &Grouped<'_>) {
    let mut seen: Vec<(String, u32)> = Vec::new();
    let mut discounts = Vec::new();
    for (key, _) in &grouped.groups {
        let cb = &cat.books[key.book as usize];
        let Some(vd) = &cb.book.volume_discount else {
            continue;
        };
        let provider = grouped.provider_names[key.provider as usize];
        if seen.iter().any(|(p, b)| p == provider && *b == key.book) {
            continue;
        }
        seen.push((provider.to_string(), key.book));
        if let Some(l) = discount_line(out, provider, &cb.book, vd) {
            discounts.push(l);
        }
    }
    out.lines.extend(discounts);
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
    Some(l)
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
            && matches!(
                l.kind,
                LineKind::Usage | LineKind::PriceMinimum | LineKind::PriceMaximum
            )
            && meter.is_none_or(|m| l.meter == Some(m));
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
    use crate::domain::pricing::book::TaxMode;
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
            volume_discounts(&mut out, &cat, &g);
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
}
