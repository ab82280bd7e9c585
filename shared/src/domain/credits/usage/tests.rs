use super::*;
use crate::domain::credits::{CreditGrant, EntryKind, GrantKind, GrantScope, GrantSource};
use chrono::{Duration, TimeZone};
use std::str::FromStr;

fn t(hours: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap() + Duration::hours(hours)
}

fn d(s: &str) -> Decimal {
    Decimal::from_str(s).unwrap()
}

fn ledger(amount: &str, scope: GrantScope) -> CreditLedger {
    let mut l = CreditLedger::new("acct");
    let g = CreditGrant {
        id: "g1".into(),
        account_id: "acct".into(),
        amount: Money::new(d(amount), Currency::USD),
        kind: GrantKind::Paid,
        priority: 0,
        effective_at: t(0),
        expires_at: None,
        scope,
        source: GrantSource::Operator { note: "n".into() },
    };
    l.grant(&g, t(0)).unwrap();
    l
}

fn usage(charges: &[(&str, Meter, &str)], at: i64) -> PeriodUsage {
    PeriodUsage {
        period_start: t(0),
        currency: Currency::USD,
        charges: charges
            .iter()
            .map(|(p, m, total)| UsageCharge {
                provider_id: p.to_string(),
                meter: *m,
                total: d(total),
            })
            .collect(),
        at: t(at),
    }
}

#[test]
fn each_draw_takes_what_the_total_grew_by_and_a_repeat_takes_nothing() {
    let mut l = ledger("100.00", GrantScope::default());
    let first = l
        .draw_usage(&usage(&[("p1", Meter::GpuSeconds, "12.50")], 1))
        .unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(
        (first[0].kind, first[0].amount),
        (EntryKind::DrawnDown, d("12.50"))
    );
    // The same total again (a replayed batch, later): nothing.
    assert!(l
        .draw_usage(&usage(&[("p1", Meter::GpuSeconds, "12.50")], 2))
        .unwrap()
        .is_empty());
    let more = l
        .draw_usage(&usage(
            &[
                ("p1", Meter::GpuSeconds, "20.00"),
                ("p1", Meter::CpuSeconds, "0.30"),
            ],
            3,
        ))
        .unwrap();
    let amounts: Vec<Decimal> = more.iter().map(|e| e.amount).collect();
    // In the order of the charges.
    assert_eq!(amounts, [d("7.50"), d("0.30")]);
    assert_eq!(l.usage_drawn(t(0), "p1", Meter::GpuSeconds), d("20"));
    assert_eq!(l.period_drawn(t(0)), d("20.30"));
    assert_eq!(l.balance(Currency::USD).available, d("79.70"));
    // Another period is its own.
    assert_eq!(l.period_drawn(t(1)), Decimal::ZERO);
}

#[test]
fn a_total_that_fell_draws_nothing_and_keeps_what_was_drawn() {
    let mut l = ledger("100.00", GrantScope::default());
    l.draw_usage(&usage(&[("p1", Meter::GpuSeconds, "10.00")], 1))
        .unwrap();
    assert!(l
        .draw_usage(&usage(&[("p1", Meter::GpuSeconds, "9.00")], 2))
        .unwrap()
        .is_empty());
    assert_eq!(l.period_drawn(t(0)), d("10"));
}

#[test]
fn only_the_latest_draw_of_each_meter_is_kept_in_the_state() {
    let mut l = ledger("1000.00", GrantScope::default());
    for i in 1..=50 {
        let total = format!("{i}.00");
        l.draw_usage(&usage(&[("p1", Meter::GpuSeconds, &total)], i))
            .unwrap();
    }
    assert_eq!(l.draw_down_ids().count(), 1);
    assert_eq!(l.period_drawn(t(0)), d("50"));
    assert_eq!(l.balance(Currency::USD).available, d("950.00"));
}

#[test]
fn usage_beyond_the_credit_is_uncovered_and_a_scoped_grant_pays_only_its_meters() {
    let scope = GrantScope {
        meters: [Meter::GpuSeconds].into(),
        providers: Default::default(),
    };
    let mut l = ledger("5.00", scope);
    let e = l
        .draw_usage(&usage(
            &[
                ("p1", Meter::CpuSeconds, "1.00"),
                ("p1", Meter::GpuSeconds, "8.00"),
            ],
            1,
        ))
        .unwrap();
    let got: Vec<(Decimal, Decimal)> = e.iter().map(|e| (e.amount, e.uncovered)).collect();
    assert_eq!(got, [(d("0"), d("1.00")), (d("5.00"), d("3.00"))]);
    assert_eq!(l.balance(Currency::USD).available, Decimal::ZERO);
}

#[test]
fn an_amount_finer_than_minor_units_changes_nothing() {
    let mut l = ledger("100.00", GrantScope::default());
    let bad = usage(
        &[
            ("p1", Meter::CpuSeconds, "1.00"),
            ("p1", Meter::GpuSeconds, "1.005"),
        ],
        1,
    );
    assert!(matches!(
        l.draw_usage(&bad),
        Err(CreditError::NotMinorUnits { .. })
    ));
    assert_eq!(l.period_drawn(t(0)), Decimal::ZERO);
    assert_eq!(l.entries().len(), 1);
}
