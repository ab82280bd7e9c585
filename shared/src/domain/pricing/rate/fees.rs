//! Step 5 of rating: the plan's fees: its recurring fee, prorated to the part of the period it
//! is active, and its reservations' amortized upfront share and monthly fee.

use super::lines::Lines;
use super::LineKind;
use crate::domain::pricing::period::{prorate, Period};
use crate::domain::pricing::plan::{Plan, Reservation};
use rust_decimal::Decimal;

/// Appends the plan's fee lines.
pub(super) fn plan_fees(out: &mut Lines, plan: &Plan, period: Period) {
    recurring_fee(out, plan, period);
    for r in &plan.reservations {
        reservation_fees(out, plan, r, period);
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
    l.quantity = Decimal::ONE;
    out.lines.push(l);
}

fn reservation_fees(out: &mut Lines, plan: &Plan, r: &Reservation, period: Period) {
    let Some(k) = r.period_index(period.start) else {
        return;
    };
    if r.upfront_amount > Decimal::ZERO {
        let amount = r.amortized(k, out.currency);
        let l = out.plain(
            LineKind::ReservationUpfront,
            format!(
                "reservation {}: upfront {} amortized, month {} of {}",
                r.id,
                r.upfront_amount,
                k + 1,
                r.term_months
            ),
            amount,
            plan.tax_mode,
        );
        out.lines.push(l);
    }
    if r.monthly_fee > Decimal::ZERO {
        let l = out.plain(
            LineKind::ReservationFee,
            format!(
                "reservation {}: {} {} per month",
                r.id, r.units_per_period, r.meter
            ),
            r.monthly_fee,
            plan.tax_mode,
        );
        out.lines.push(l);
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{d, jan, lines_for, t};
    use super::*;
    use crate::domain::meter::Meter;
    use crate::domain::pricing::plan::Upfront;

    #[test]
    fn the_recurring_fee_is_prorated_to_the_active_part() {
        let plan = Plan {
            name: "Team".into(),
            recurring_fee: Some(d("31.00")),
            active: Some(Period::new(t("2026-01-21T00:00:00Z"), t("2026-03-01T00:00:00Z"))),
            ..Plan::default()
        };
        let mut out = lines_for(jan());
        plan_fees(&mut out, &plan, jan());
        let l = &out.lines[0];
        assert_eq!(
            (l.kind, l.quantity, l.amount),
            (LineKind::RecurringFee, Decimal::ONE, d("11.00"))
        );
        assert_eq!(l.description, "Team recurring fee 31.00 × 950400/2678400 s");
    }

    #[test]
    fn reservation_fees_in_term_only() {
        let r = Reservation {
            id: "r1".into(),
            meter: Meter::GpuSeconds,
            units_per_period: d("100"),
            term_start: t("2025-12-01T00:00:00Z"),
            term_months: 2,
            upfront: Upfront::Partial,
            upfront_amount: d("100.00"),
            monthly_fee: d("5.00"),
        };
        let plan = Plan {
            reservations: vec![r],
            ..Plan::default()
        };
        let mut out = lines_for(jan());
        plan_fees(&mut out, &plan, jan());
        let got: Vec<(LineKind, Decimal)> = out.lines.iter().map(|l| (l.kind, l.amount)).collect();
        assert_eq!(
            got,
            vec![
                (LineKind::ReservationUpfront, d("50.00")),
                (LineKind::ReservationFee, d("5.00"))
            ]
        );
        let feb = Period::new(t("2026-02-01T00:00:00Z"), t("2026-03-01T00:00:00Z"));
        let mut out = lines_for(feb);
        plan_fees(&mut out, &plan, feb);
        assert!(out.lines.is_empty(), "the term ended with January");
    }
}
