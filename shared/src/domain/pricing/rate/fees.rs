//! Step 5 of rating: the plan's fees: its recurring fee, prorated to the part of the period it
//! is active, and for each reservation in term its monthly fee and the units it left unused.
//! A reservation's upfront is not a fee of the period: it is rated on its own, at purchase
//! ([`rate_upfront`]).

use super::lines::{calculation, Lines};
use super::{period_tax_at, result, LineKind, RatingContext, RatingError, RatingResult};
use crate::domain::pricing::period::{prorate, Period};
use crate::domain::pricing::plan::{Plan, Reservation, Upfront};
use rust_decimal::Decimal;

/// What fee lines count.
const FEE: &str = "fee";

/// Appends the plan's fee lines; `reserved_left` is what each reservation in term left unused
/// (index in the plan's list, units).
pub(super) fn plan_fees(out: &mut Lines, plan: &Plan, period: Period, reserved_left: &[(usize, Decimal)]) {
    recurring_fee(out, plan, period);
    for &(i, left) in reserved_left {
        let r = &plan.reservations[i];
        reservation_fee(out, plan, r);
        unused_units(out, plan, r, left);
    }
}

fn recurring_fee(out: &mut Lines, plan: &Plan, period: Period) {
    let Some(fee) = plan.recurring_fee else {
        return;
    };
    let active = plan.active.unwrap_or(period);
    let amount = prorate(fee, period, active);
    let share = period.intersect(&active).map_or(0, |p| p.seconds());
    let mut l = out.plain(
        LineKind::RecurringFee,
        format!(
            "{} recurring fee {fee} × {share}/{} s",
            plan.name,
            period.seconds()
        )
        .trim()
        .to_string(),
        amount,
        plan.tax_mode,
    );
    fee_line(&mut l, fee);
    let calc = if share == period.seconds() {
        format!("1 × {fee}")
    } else {
        format!(
            "1 × {fee} × {share} s active / {} s in the period",
            period.seconds()
        )
    };
    l.calculation = calculation(&calc, amount, l.amount);
    out.lines.push(l);
}

/// A fee line: quantity 1 of `unit_price`.
fn fee_line(l: &mut super::LineItem, unit_price: Decimal) {
    l.quantity = Decimal::ONE;
    l.unit = Some(FEE.into());
    l.unit_price = Some(unit_price);
}

fn reservation_fee(out: &mut Lines, plan: &Plan, r: &Reservation) {
    if r.monthly_fee <= Decimal::ZERO {
        return;
    }
    let mut l = out.plain(
        LineKind::ReservationFee,
        format!(
            "reservation {}: {} {} per month, monthly fee",
            r.id, r.units_per_period, r.meter
        ),
        r.monthly_fee,
        plan.tax_mode,
    );
    fee_line(&mut l, r.monthly_fee);
    l.provider_id = r.provider_id.clone();
    l.calculation = calculation(&format!("1 × {}", r.monthly_fee), r.monthly_fee, l.amount);
    out.lines.push(l);
}

/// Says on the invoice what a reservation left unused: those units are paid for all the same.
fn unused_units(out: &mut Lines, plan: &Plan, r: &Reservation, left: Decimal) {
    if left <= Decimal::ZERO {
        return;
    }
    let mut l = out.plain(
        LineKind::ReservedUnused,
        format!(
            "reservation {}: {} of {} reserved {} unused this period, owed all the same (paid by the reservation's upfront and monthly fee)",
            r.id,
            left.normalize(),
            r.units_per_period.normalize(),
            r.meter
        ),
        Decimal::ZERO,
        plan.tax_mode,
    );
    l.provider_id = r.provider_id.clone();
    l.meter = Some(r.meter);
    l.quantity = left;
    l.unit = Some(r.meter.unit().into());
    l.unit_price = Some(Decimal::ZERO);
    l.calculation = format!(
        "{} {} unused: no charge beyond the reservation's",
        left.normalize(),
        r.meter.unit()
    );
    out.lines.push(l);
}

/// A reservation's upfront as its own rating, the purchase: one line of quantity 1 at the
/// upfront amount, for the whole term, taxed at the account's position at the start of the term.
/// `ctx.subscription.plan` is the plan holding the reservation (its tax mode applies).
pub fn rate_upfront(ctx: &RatingContext<'_>, r: &Reservation) -> Result<RatingResult, RatingError> {
    let plan = &ctx.subscription.plan;
    let term = r.term().unwrap_or(Period::new(r.term_start, r.term_start));
    if term.end <= term.start {
        return Err(RatingError::EmptyPeriod(term));
    }
    let tax = period_tax_at(ctx, r.term_start)?;
    let mut out = Lines::new(ctx.catalog.currency(), term, tax);
    out.lines.push(upfront_line(&out, plan, r));
    Ok(result(ctx, term, out.lines, Vec::new()))
}

fn upfront_line(out: &Lines, plan: &Plan, r: &Reservation) -> super::LineItem {
    let mut l = out.plain(
        LineKind::ReservationUpfront,
        format!(
            "reservation {}: {} upfront for {} {} per month over {} months from {}",
            r.id,
            match r.upfront {
                Upfront::All => "all",
                Upfront::Partial => "partial",
                Upfront::None => "no",
            },
            r.units_per_period.normalize(),
            r.meter,
            r.term_months,
            r.term_start.format("%Y-%m-%d %H:%M UTC")
        ),
        r.upfront_amount,
        plan.tax_mode,
    );
    fee_line(&mut l, r.upfront_amount);
    l.provider_id = r.provider_id.clone();
    l.calculation = calculation(&format!("1 × {}", r.upfront_amount), r.upfront_amount, l.amount);
    l
}

#[cfg(test)]
mod tests {
    use super::super::tests::{book, d, jan, lines_for, t};
    use super::*;
    use crate::domain::meter::Meter;
    use crate::domain::pricing::catalog::Catalog;
    use crate::domain::pricing::dynamic::MarketFactors;
    use crate::domain::pricing::plan::Subscription;
    use crate::domain::pricing::tax::TaxTable;
    use serde_json::json;

    fn reservation() -> Reservation {
        Reservation {
            id: "r1".into(),
            meter: Meter::GpuSeconds,
            units_per_period: d("100"),
            term_start: t("2025-12-01T00:00:00Z"),
            term_months: 2,
            upfront: Upfront::Partial,
            upfront_amount: d("100.00"),
            monthly_fee: d("5.00"),
            provider_id: Some("p1".into()),
            on_cancel: Default::default(),
        }
    }

    #[test]
    fn the_recurring_fee_is_prorated_to_the_active_part() {
        let plan = Plan {
            name: "Team".into(),
            recurring_fee: Some(d("31.00")),
            active: Some(Period::new(t("2026-01-21T00:00:00Z"), t("2026-03-01T00:00:00Z"))),
            ..Plan::default()
        };
        let mut out = lines_for(jan());
        plan_fees(&mut out, &plan, jan(), &[]);
        let l = &out.lines[0];
        assert_eq!(
            (l.kind, l.quantity, l.amount),
            (LineKind::RecurringFee, Decimal::ONE, d("11.00"))
        );
        assert_eq!(l.unit_price, Some(d("31.00")));
        assert_eq!(l.description, "Team recurring fee 31.00 × 950400/2678400 s");
        assert_eq!(
            l.calculation,
            "1 × 31.00 × 950400 s active / 2678400 s in the period = 11.00"
        );
    }

    #[test]
    fn a_reservation_in_term_has_its_monthly_fee_and_says_what_it_left_unused() {
        let plan = Plan {
            reservations: vec![reservation()],
            ..Plan::default()
        };
        let mut out = lines_for(jan());
        plan_fees(&mut out, &plan, jan(), &[(0, d("40"))]);
        let got: Vec<(LineKind, Decimal, Decimal, Option<&str>)> = out
            .lines
            .iter()
            .map(|l| (l.kind, l.quantity, l.amount, l.provider_id.as_deref()))
            .collect();
        assert_eq!(
            got,
            vec![
                (LineKind::ReservationFee, d("1"), d("5.00"), Some("p1")),
                (LineKind::ReservedUnused, d("40"), d("0.00"), Some("p1")),
            ]
        );
        assert!(out.lines[1]
            .description
            .contains("40 of 100 reserved gpu_seconds unused"));
        // No upfront share on a period's invoice: it is invoiced once, at purchase.
        assert!(out.lines.iter().all(|l| l.kind != LineKind::ReservationUpfront));
        let mut out = lines_for(jan());
        plan_fees(&mut out, &plan, jan(), &[(0, d("0"))]);
        assert_eq!(out.lines.len(), 1, "nothing unused, no unused line");
    }

    #[test]
    fn the_upfront_is_rated_once_for_the_term_and_taxed_at_its_start() {
        let cat = Catalog::new(vec![book("p1", json!([]))]).unwrap();
        let taxes: TaxTable = serde_json::from_value(json!({"rates": [
            {"country": "DE", "name": "USt", "rate": "0.16", "effective_from": "2020-07-01T00:00:00Z",
             "effective_to": "2026-01-01T00:00:00Z"},
            {"country": "DE", "name": "USt", "rate": "0.19", "effective_from": "2026-01-01T00:00:00Z"}]}))
        .unwrap();
        let mut sub = Subscription::pay_per_use("acc");
        sub.tax.jurisdiction = Some(crate::domain::pricing::tax::Jurisdiction {
            country: "DE".into(),
            region: None,
        });
        let market = MarketFactors::default();
        let ctx = RatingContext {
            catalog: &cat,
            subscription: &sub,
            taxes: &taxes,
            market: &market,
        };
        let r = rate_upfront(&ctx, &reservation()).unwrap();
        assert_eq!(
            r.period,
            Period::new(t("2025-12-01T00:00:00Z"), t("2026-02-01T00:00:00Z"))
        );
        assert_eq!(r.lines.len(), 1);
        let l = &r.lines[0];
        assert_eq!(
            (l.kind, l.quantity, l.unit_price),
            (LineKind::ReservationUpfront, d("1"), Some(d("100.00")))
        );
        // The rate in force at the purchase (1 December 2025: 16 %), not at the term's end.
        assert_eq!(
            (r.net_total, r.tax_total, r.total),
            (d("100.00"), d("16.00"), d("116.00"))
        );
        assert_eq!(l.provider_id.as_deref(), Some("p1"));
        assert_eq!(crate::domain::money::Currency::USD, r.currency);
    }
}
