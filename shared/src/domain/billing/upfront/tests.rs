//! The upfront invoice, the purchases it is owed for, and the refund of a cancelled reservation.

use super::*;
use crate::domain::billing::{sample, Cadence, PlanChange};
use crate::domain::money::Currency;
use serde_json::json;

fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// 100,000 GPU-s a month of `prov_000` for 12 months from 2026-01-01, 1,000.00 upfront and
/// 50.00 a month.
fn reservation(id: &str, on_cancel: &str) -> Reservation {
    serde_json::from_value(
        json!({"id": id, "meter": "gpu_seconds", "units_per_period": "100000",
        "term_start": "2026-01-01T00:00:00Z", "term_months": 12, "upfront": "partial",
        "upfront_amount": "1000.00", "monthly_fee": "50.00", "provider_id": "prov_000",
        "on_cancel": on_cancel}),
    )
    .unwrap()
}

/// The sample monthly subscription from December 2025 with the reservation in its plan.
fn subscription(r: Reservation) -> BillingSubscription {
    let mut sub = sample::subscription("sub_1", "acct_1", Cadence::Monthly, t("2025-11-30T23:00:00Z"));
    sub.plan.reservations.push(r);
    sub
}

fn invoice_for(
    sub: &BillingSubscription,
    account: &Account,
    rate: Option<&ExchangeRate>,
) -> Result<Invoice, CloseError> {
    let data = sample::catalog();
    let catalog = Catalog::new(data.books.clone()).unwrap();
    let (plan, r) = upfronts_due(sub, t("2026-01-01T00:10:00Z"))[0];
    let payouts = BTreeMap::from([("prov_000".to_string(), UpfrontPayout::OverTerm)]);
    upfront_invoice(&UpfrontInput {
        account,
        subscription: sub,
        plan,
        reservation: r,
        catalog: &catalog,
        taxes: &data.taxes,
        fees: &data.fees,
        payouts: &payouts,
        rate,
        now: t("2026-01-01T00:10:00Z"),
    })
}

#[test]
fn the_upfront_is_one_taxed_line_on_its_own_invoice() {
    let sub = subscription(reservation("r1", "no_refund"));
    let account = sample::account("acct_1", Currency::USD);
    let inv = invoice_for(&sub, &account, None).unwrap();
    assert_eq!(inv.invoice_id, "inv_acct_1~sub_1_upfront_r1_20260101T000000Z");
    assert_eq!(inv.kind, InvoiceKind::ReservationUpfront);
    assert_eq!(
        (inv.period.start, inv.period.end),
        (t("2026-01-01T00:00:00Z"), t("2026-01-01T00:00:00Z"))
    );
    assert_eq!(inv.lines.len(), 1);
    let l = &inv.lines[0];
    assert_eq!(
        (l.provider_id.as_str(), l.quantity, l.net, l.tax),
        ("prov_000", d("1"), d("1000.00"), d("190.00"))
    );
    assert_eq!(
        (inv.net_total, inv.tax_total, inv.total),
        (d("1000.00"), d("190.00"), d("1190.00"))
    );
    assert_eq!((inv.credit_applied, inv.amount_due), (d("0.00"), d("1190.00")));
    // prov_000's fee is 15 %: 150.00, payout 850.00, spread over the 12 months.
    let s = &inv.statements.statements[0];
    assert_eq!(
        (s.usage_billed.amount, s.marketplace_fee.amount, s.payout.amount),
        (d("1000.00"), d("150.00"), d("850.00"))
    );
    assert_eq!(s.term_schedule.len(), 12);
    assert_eq!(
        s.term_schedule.iter().map(|m| m.payout.amount).sum::<Decimal>(),
        d("850.00")
    );
    assert_eq!(s.term_schedule[0].payout.amount, d("70.83"));
    assert_eq!(inv.statements.customer_total().amount, inv.total);
    let numbered = inv.finalize(7).unwrap();
    assert_eq!(numbered.number.as_deref(), Some("ML-000007"));
}

#[test]
fn in_another_currency_at_the_rate_of_the_purchase() {
    let sub = subscription(reservation("r1", "no_refund"));
    let account = sample::account("acct_1", Currency::EUR);
    assert!(matches!(
        invoice_for(&sub, &account, None),
        Err(CloseError::MissingRate { .. })
    ));
    let rate = ExchangeRate::new(
        CurrencyPair::new(Currency::USD, Currency::EUR),
        d("0.9"),
        t("2025-12-31T22:00:00Z"),
        vec!["ecb".into()],
        t("2025-12-31T22:00:00Z"),
    )
    .unwrap();
    let inv = invoice_for(&sub, &account, Some(&rate)).unwrap();
    assert_eq!((inv.net_total, inv.tax_total), (d("900.00"), d("171.00")));
    assert_eq!(
        inv.conversion.as_ref().map(|c| c.rate_for),
        Some(t("2026-01-01T00:00:00Z"))
    );
    let text = inv.lines[0].conversion.as_deref().unwrap();
    assert!(text.contains("USD/EUR 0.9") && text.contains("ecb"), "{text}");
}

#[test]
fn an_upfront_is_owed_once_its_term_has_started_and_once_per_purchase() {
    let mut sub = subscription(reservation("r1", "no_refund"));
    assert!(upfronts_due(&sub, t("2025-12-31T23:59:59Z")).is_empty());
    assert_eq!(upfronts_due(&sub, t("2026-01-01T00:00:00Z")).len(), 1);
    // A change of plan that keeps the reservation does not buy it again; one that adds a new
    // reservation buys that one when the change comes into force.
    let mut keep = sub.plan.clone();
    keep.recurring_fee = Some(d("20.00"));
    let mut more = keep.clone();
    let mut r2 = reservation("r2", "no_refund");
    r2.term_start = t("2026-03-01T00:00:00Z");
    more.reservations.push(r2);
    sub.plan_changes = vec![
        PlanChange {
            at: t("2026-02-01T00:00:00Z"),
            plan: keep,
            plan_ref: None,
        },
        PlanChange {
            at: t("2026-03-01T00:00:00Z"),
            plan: more,
            plan_ref: None,
        },
    ];
    let ids = |now: &str| -> Vec<String> {
        upfronts_due(&sub, t(now))
            .iter()
            .map(|(_, r)| r.id.clone())
            .collect()
    };
    assert_eq!(ids("2026-02-15T00:00:00Z"), ["r1"]);
    assert_eq!(ids("2026-03-01T00:00:00Z"), ["r1", "r2"]);
    assert_eq!(upfront_purchases(&sub).len(), 2);
}

#[test]
fn a_reservation_ends_with_the_change_that_drops_it_or_the_cancellation() {
    let r = reservation("r1", "credit_note");
    let mut sub = subscription(r.clone());
    assert_eq!(reservation_end(&sub, &r), None);
    sub.cancelled_at = Some(t("2026-03-10T00:00:00Z"));
    assert_eq!(reservation_end(&sub, &r), Some(t("2026-03-10T00:00:00Z")));
    let mut dropped = sub.plan.clone();
    dropped.reservations.clear();
    sub.plan_changes.push(PlanChange {
        at: t("2026-02-20T00:00:00Z"),
        plan: dropped,
        plan_ref: None,
    });
    assert_eq!(reservation_end(&sub, &r), Some(t("2026-02-20T00:00:00Z")));
    // Cancelled after the term: it ran its course.
    sub.plan_changes.clear();
    sub.cancelled_at = Some(t("2027-01-01T00:00:00Z"));
    assert_eq!(reservation_end(&sub, &r), None);
    // Cancelled before the term started: nothing is owed.
    sub.cancelled_at = Some(t("2025-12-20T00:00:00Z"));
    assert!(upfronts_due(&sub, t("2026-02-01T00:00:00Z")).is_empty());
}

#[test]
fn a_cancelled_reservation_is_refunded_the_months_not_started_only_if_configured() {
    let account = sample::account("acct_1", Currency::USD);
    let refunded = reservation("r1", "credit_note");
    let inv = invoice_for(&subscription(refunded.clone()), &account, None).unwrap();
    // Cancelled on 10 March: month 3 of 12 is kept; 9 months are refunded.
    let note = refund_note(
        &refunded,
        &inv,
        t("2026-03-10T00:00:00Z"),
        "inv_x",
        t("2026-04-01T00:00:00Z"),
    )
    .unwrap();
    assert_eq!(
        note.credit_note_id,
        format!("credit-note#{}#cancelled", inv.invoice_id)
    );
    assert_eq!(note.original_invoice_id, inv.invoice_id);
    let l = &note.lines[0];
    assert_eq!(
        (l.net, l.tax, l.gross),
        (d("-750.00"), d("-142.50"), d("-892.50"))
    );
    assert_eq!(note.amount, d("892.50"));
    assert_eq!(l.provider_id, "prov_000");
    // No refund by default, on a voided invoice, or in the last month.
    let kept = reservation("r1", "no_refund");
    assert!(refund_note(
        &kept,
        &inv,
        t("2026-03-10T00:00:00Z"),
        "inv_x",
        t("2026-04-01T00:00:00Z")
    )
    .is_none());
    assert!(refund_note(
        &refunded,
        &inv,
        t("2026-12-10T00:00:00Z"),
        "inv_x",
        t("2027-01-01T00:00:00Z")
    )
    .is_none());
    let mut void = inv.clone();
    void.status = InvoiceStatus::Void;
    assert!(refund_note(
        &refunded,
        &void,
        t("2026-03-10T00:00:00Z"),
        "inv_x",
        t("2026-04-01T00:00:00Z")
    )
    .is_none());
}
