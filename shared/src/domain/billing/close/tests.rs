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

mod marketplace_discount {
    use super::*;
    use crate::domain::pricing::{volume_discount, DiscountScope, LineKind, VolumeDiscount};
    use proptest::prelude::*;

    fn discount() -> VolumeDiscount {
        serde_json::from_value(serde_json::json!({"basis": "spend", "method": "incremental",
            "scope": "marketplace", "thresholds": [{"from": "0", "percent": "0"},
            {"from": "1", "percent": "3"}, {"from": "50", "percent": "7.5"}]}))
        .unwrap()
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, .. ProptestConfig::default() })]

        /// With the marketplace-wide discount split across providers, the customer's total is
        /// still the providers' payouts plus the fees plus the tax, to the cent; the shares add up
        /// to the discount rounded once, and each provider's statement shows its share.
        #[test]
        fn customer_totals_equal_payouts_fees_and_tax_with_a_shared_discount(
            usage in proptest::collection::vec((0usize..4, 0usize..3, 1i64..50_000_000, 0i64..(30 * 24)), 1..30),
        ) {
            let mut data = sample::catalog();
            let m = data.books.iter_mut().find(|b| b.id == "marketplace-usd").unwrap();
            m.volume_discount = Some(discount());
            let catalog = Catalog::new(data.books.clone()).unwrap();
            let account = sample::account("acct_1", Currency::USD);
            let sub = sample::subscription("sub_1", "acct_1", Cadence::Monthly, t("2025-12-31T23:00:00Z"));
            let period = sub.period_to_close().unwrap().unwrap();
            let meters = [Meter::CpuSeconds, Meter::GpuSeconds, Meter::NetworkEgressGib];
            let rows: Vec<UsageRow> = usage
                .iter()
                .map(|&(p, m, q, h)| UsageRow {
                    provider_id: format!("prov_00{p}"),
                    meter: meters[m],
                    dimensions: Default::default(),
                    window_start: period.start + chrono::TimeDelta::hours(h),
                    quantity: Decimal::new(q, 3),
                })
                .collect();
            let input = CloseInput {
                account: &account,
                subscription: &sub,
                period,
                catalog: &catalog,
                taxes: &data.taxes,
                fees: &data.fees,
                usage: &rows,
                prior: Vec::new(),
                rate: None,
                now: period.end,
                refunds: Vec::new(),
            };
            let inv = close_period(&input).unwrap().invoice;
            let run = &inv.statements;
            let parts: Decimal = run.statements.iter()
                .map(|s| s.payout.amount + s.marketplace_fee.amount + s.tax.amount).sum();
            prop_assert_eq!(parts, inv.total);
            let rated: Vec<_> = inv.lines.iter().filter_map(|l| l.rated.as_ref()).collect();
            let counted = |k: LineKind| matches!(k, LineKind::Usage | LineKind::PriceMinimum | LineKind::PriceMaximum);
            let spend: Decimal = rated.iter().filter(|l| counted(l.kind)).map(|l| l.amount).sum();
            let expected = Currency::USD.round(volume_discount(&discount(), spend, Decimal::ZERO));
            let shares: Vec<_> = rated.iter()
                .filter(|l| l.discount_scope == Some(DiscountScope::Marketplace)).collect();
            prop_assert_eq!(shares.iter().map(|l| l.amount).sum::<Decimal>(), -expected);
            for s in &run.statements {
                let own: Decimal = shares.iter()
                    .filter(|l| l.provider_id.as_deref() == Some(s.provider_id.as_str()))
                    .map(|l| l.tax.net).sum();
                prop_assert_eq!(s.discount_share.map_or(Decimal::ZERO, |m| m.amount), own);
                // Within a cent of the provider's exact share of the discount.
                if !own.is_zero() {
                    let theirs: Decimal = rated.iter()
                        .filter(|l| counted(l.kind) && l.provider_id.as_deref() == Some(s.provider_id.as_str()))
                        .map(|l| l.amount).sum();
                    let exact = expected * theirs / spend;
                    prop_assert!((-own - exact).abs() < Decimal::new(1, 2));
                }
            }
        }
    }
}
