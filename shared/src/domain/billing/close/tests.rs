//! Helpers shared by the unit tests of the close's steps, and tests of the whole close.

use super::*;
use crate::domain::billing::sample;
use crate::domain::billing::Cadence;

pub(super) fn d(s: &str) -> Decimal {
    s.parse().unwrap()
}

fn t(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// An invoice line of `provider` with the given quantity, net and tax, and no rated detail.
pub(super) fn line(
    provider: &str,
    meter: Option<Meter>,
    quantity: &str,
    net: &str,
    tax: &str,
) -> InvoiceLine {
    InvoiceLine {
        description: String::new(),
        provider_id: provider.into(),
        meter,
        quantity: d(quantity),
        net: d(net),
        tax: d(tax),
        gross: d(net) + d(tax),
        conversion: None,
        rated: None,
        adjusts: None,
    }
}

/// A credit note of `amount` (positive: credited).
pub(super) fn note(amount: &str) -> CreditNoteDoc {
    CreditNoteDoc {
        credit_note_id: "credit-note#inv_old#inv_new".into(),
        account_id: "acct_1".into(),
        original_invoice_id: "inv_old".into(),
        original_period: closed_invoice().period,
        issued_with: "inv_new".into(),
        currency: Currency::USD,
        lines: Vec::new(),
        amount: d(amount),
        issued_at: t("2026-02-01T00:05:00Z"),
    }
}

/// The sample account (USD, Germany, net 14) and monthly subscription from 2026-01-01, closing
/// January at 2026-02-01T00:05Z with no usage.
pub(super) fn input_with<R>(f: impl FnOnce(&CloseInput<'_>) -> R) -> R {
    let data = sample::catalog();
    let catalog = Catalog::new(data.books.clone()).unwrap();
    let account = sample::account("acct_1", Currency::USD);
    let sub = sample::subscription("sub_1", "acct_1", Cadence::Monthly, t("2025-12-31T23:00:00Z"));
    let period = sub.period_to_close().unwrap().unwrap();
    f(&CloseInput {
        account: &account,
        subscription: &sub,
        period,
        catalog: &catalog,
        taxes: &data.taxes,
        fees: &data.fees,
        usage: &[],
        prior: Vec::new(),
        rate: None,
        now: t("2026-02-01T00:05:00Z"),
        refunds: Vec::new(),
    })
}

/// The January invoice of [`input_with`], numbered.
pub(super) fn closed_invoice() -> Invoice {
    input_with(|input| close_period(input).unwrap().invoice)
        .finalize(1)
        .unwrap()
}

#[test]
fn an_empty_period_is_invoiced_its_fee_with_tax() {
    let inv = closed_invoice();
    // The sample plan's 10.00 fee, 19 % German tax; nothing else.
    assert_eq!(inv.lines.len(), 1);
    assert_eq!(
        (inv.net_total, inv.tax_total, inv.total),
        (d("10.00"), d("1.90"), d("11.90"))
    );
    assert_eq!(inv.number.as_deref(), Some("ML-000001"));
    assert_eq!(inv.due_date, NaiveDate::from_ymd_opt(2026, 2, 15).unwrap());
    assert_eq!(inv.statements.customer_total().amount, inv.total);
}
