//! What happens to invoices after they are issued, as pure decisions the store then writes
//! conditionally: list filters, voiding, manual credit notes, and the tax report (with its CSV
//! form). See `docs/billing-cycles.md#after-the-close-void-payments-out-of-band-credit-notes`.

use super::close::{CreditNoteDoc, Invoice, InvoiceLine, MARKETPLACE};
use super::invoice::{IllegalTransition, InvoiceStatus};
use crate::domain::money::Currency;
use crate::domain::pricing::{Jurisdiction, TaxTreatment};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};

/// What a successful payment does to an invoice: the new outstanding amount and status.
pub fn apply_payment(
    status: InvoiceStatus,
    outstanding: Decimal,
    amount: Decimal,
) -> Option<(InvoiceStatus, Decimal)> {
    if !(status.is_collectible() || status == InvoiceStatus::Uncollectible) {
        return None;
    }
    let left = (outstanding - amount).max(Decimal::ZERO);
    let next = if left.is_zero() {
        status.transition(InvoiceStatus::Paid).ok()?
    } else {
        status
    };
    Some((next, left))
}

/// Which invoices a list returns. Empty fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvoiceFilter {
    /// Any of these statuses.
    pub statuses: Vec<InvoiceStatus>,
    /// The billing period starts at or after this instant.
    pub period_from: Option<DateTime<Utc>>,
    /// The billing period starts before this instant.
    pub period_to: Option<DateTime<Utc>>,
    /// The invoice total is at least this.
    pub min_total: Option<Decimal>,
    /// The invoice total is at most this.
    pub max_total: Option<Decimal>,
}

impl InvoiceFilter {
    pub fn matches(&self, inv: &Invoice) -> bool {
        (self.statuses.is_empty() || self.statuses.contains(&inv.status))
            && self.period_from.is_none_or(|f| inv.period.start >= f)
            && self.period_to.is_none_or(|t| inv.period.start < t)
            && self.min_total.is_none_or(|m| inv.total >= m)
            && self.max_total.is_none_or(|m| inv.total <= m)
    }
}

/// Why an invoice cannot be voided.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VoidError {
    #[error(transparent)]
    Illegal(#[from] IllegalTransition),
    #[error("a payment was applied to invoice {0}; refund it or issue a credit note instead")]
    Paid(String),
    #[error("invoice {0} has credit notes; it cannot be voided")]
    Credited(String),
}

/// Whether `inv` may be voided: a legal transition (open, past due or uncollectible), with no
/// payment applied and no credit note issued against it. Voiding returns the credit balance the
/// invoice consumed (`credit_applied`) to the account, as Stripe does.
pub fn check_void(inv: &Invoice, payments_applied: bool, credit_notes: bool) -> Result<(), VoidError> {
    inv.status.transition(InvoiceStatus::Void)?;
    if payments_applied {
        return Err(VoidError::Paid(inv.invoice_id.clone()));
    }
    if credit_notes {
        return Err(VoidError::Credited(inv.invoice_id.clone()));
    }
    Ok(())
}

/// Why a credit note was given (Stripe's reasons).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CreditReason {
    Duplicate,
    Fraudulent,
    OrderChange,
    ProductUnsatisfactory,
}

impl CreditReason {
    pub const ALL: [CreditReason; 4] = [
        CreditReason::Duplicate,
        CreditReason::Fraudulent,
        CreditReason::OrderChange,
        CreditReason::ProductUnsatisfactory,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CreditReason::Duplicate => "duplicate",
            CreditReason::Fraudulent => "fraudulent",
            CreditReason::OrderChange => "order_change",
            CreditReason::ProductUnsatisfactory => "product_unsatisfactory",
        }
    }
}

/// A credit note an operator issues against an invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManualCredit {
    /// Gross, in the invoice currency; positive and rounded.
    pub amount: Decimal,
    pub reason: Option<CreditReason>,
    pub memo: Option<String>,
}

/// What a manual credit note does, for the store to write in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreditEffect {
    pub note: CreditNoteDoc,
    /// The invoice's status and outstanding amount after the note.
    pub status: InvoiceStatus,
    pub outstanding: Decimal,
    /// The part that did not reduce the outstanding amount: added to the account's credit
    /// balance.
    pub to_balance: Decimal,
}

/// Why a credit note cannot be issued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CreditNoteError {
    #[error("invoice {0} is {1}; only a finalized invoice can be credited")]
    Status(String, InvoiceStatus),
    #[error("amount must be positive")]
    NotPositive,
    #[error("amount {amount} has more digits than {currency} allows")]
    NotRounded { amount: Decimal, currency: Currency },
    #[error("amount {amount} is more than the {creditable} that can still be credited")]
    OverCredit { amount: Decimal, creditable: Decimal },
}

/// What can still be credited on `inv`: its total less the credit notes already issued
/// against it.
pub fn creditable(inv: &Invoice, credited: Decimal) -> Decimal {
    (inv.total - credited).max(Decimal::ZERO)
}

/// A manual credit note against `inv`, Stripe-like: it first lowers what the customer still
/// owes on the invoice (an invoice brought to zero is `paid`), and the rest (on a paid invoice,
/// all of it) is credited to the account's balance, applied to its next invoices. Its tax is the
/// invoice's tax share of the amount, rounded once; it is the marketplace's (not attributed to
/// providers' statements).
pub fn manual_credit_note(
    inv: &Invoice,
    credited: Decimal,
    credit_note_id: &str,
    credit: &ManualCredit,
    now: DateTime<Utc>,
) -> Result<CreditEffect, CreditNoteError> {
    let cur = inv.currency;
    if matches!(inv.status, InvoiceStatus::Draft | InvoiceStatus::Void) {
        return Err(CreditNoteError::Status(inv.invoice_id.clone(), inv.status));
    }
    if credit.amount <= Decimal::ZERO {
        return Err(CreditNoteError::NotPositive);
    }
    if !cur.is_rounded(credit.amount) {
        return Err(CreditNoteError::NotRounded {
            amount: credit.amount,
            currency: cur,
        });
    }
    let can = creditable(inv, credited);
    if credit.amount > can {
        return Err(CreditNoteError::OverCredit {
            amount: credit.amount,
            creditable: can,
        });
    }
    let amount = cur.round(credit.amount);
    let tax = if inv.total.is_zero() {
        Decimal::ZERO
    } else {
        cur.round(amount * inv.tax_total / inv.total)
    };
    let net = amount - tax;
    let (status, outstanding) = match apply_payment(inv.status, inv.outstanding, amount) {
        Some(next) => next,
        None => (inv.status, inv.outstanding),
    };
    let reduced = inv.outstanding - outstanding;
    let mut description = format!(
        "Credit note for invoice {}",
        inv.number.as_deref().unwrap_or(&inv.invoice_id)
    );
    if let Some(r) = credit.reason {
        description.push_str(&format!(" ({})", r.as_str()));
    }
    if let Some(m) = &credit.memo {
        description.push_str(&format!(": {m}"));
    }
    let note = CreditNoteDoc {
        credit_note_id: credit_note_id.to_string(),
        account_id: inv.account_id.clone(),
        original_invoice_id: inv.invoice_id.clone(),
        original_period: inv.period,
        issued_with: MANUAL.to_string(),
        currency: cur,
        lines: vec![InvoiceLine {
            description,
            provider_id: MARKETPLACE.to_string(),
            meter: None,
            quantity: Decimal::ZERO,
            net: -net,
            tax: -tax,
            gross: -amount,
            conversion: None,
            rated: None,
            adjusts: None,
        }],
        amount,
        issued_at: now,
    };
    Ok(CreditEffect {
        note,
        status,
        outstanding,
        to_balance: amount - reduced,
    })
}

/// The `issued_with` of a credit note an operator issued (not found by a close).
pub const MANUAL: &str = "manual";

/// The id of a manual credit note against `invoice_id` with the caller's `key`: the same key
/// gives the same note, so a retry is a no-op.
pub fn manual_credit_note_id(invoice_id: &str, key: &str) -> String {
    format!("credit-note#{invoice_id}#manual-{key}")
}

/// One row of the tax report: per invoice currency, jurisdiction, rate and treatment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaxSummaryRow {
    pub currency: Currency,
    /// `None`: not taxed, or late-usage adjustments whose invoice mixes several tax positions.
    pub jurisdiction: Option<Jurisdiction>,
    /// A fraction (0.19 is 19 %); `None` with `treatment` for unattributed adjustments.
    pub rate: Option<Decimal>,
    pub treatment: Option<TaxTreatment>,
    /// Net amount of the lines, in the invoice currency.
    pub taxable: Decimal,
    pub tax: Decimal,
    /// Invoices with lines in this row.
    pub invoices: usize,
}

type TaxKey = (
    &'static str,
    Option<Jurisdiction>,
    Option<Decimal>,
    Option<TaxTreatment>,
);

/// The tax position of a line: from its rated detail; a late-usage adjustment line (no rated
/// detail) takes its invoice's tax position when the invoice has exactly one.
fn line_key(inv: &Invoice, line: &InvoiceLine, single: Option<&TaxKey>) -> TaxKey {
    match &line.rated {
        Some(r) => (
            inv.currency.code(),
            r.tax.jurisdiction.clone(),
            Some(r.tax.rate.normalize()),
            Some(r.tax.treatment),
        ),
        None => single.cloned().unwrap_or((inv.currency.code(), None, None, None)),
    }
}

/// Taxable amount and tax per currency, jurisdiction, rate and treatment, summed over the lines
/// (in the invoice currency, as invoiced) of `invoices` that were finalized (drafts and void
/// invoices excluded). Rows are ordered by currency code, jurisdiction, rate, treatment.
pub fn tax_summary<'a>(invoices: impl IntoIterator<Item = &'a Invoice>) -> Vec<TaxSummaryRow> {
    let mut by: BTreeMap<TaxKey, (Currency, Decimal, Decimal, BTreeSet<&'a str>)> = BTreeMap::new();
    for inv in invoices {
        if matches!(inv.status, InvoiceStatus::Draft | InvoiceStatus::Void) {
            continue;
        }
        let keys: BTreeSet<TaxKey> = inv
            .lines
            .iter()
            .filter(|l| l.rated.is_some())
            .map(|l| line_key(inv, l, None))
            .collect();
        let single = (keys.len() == 1).then(|| keys.into_iter().next()).flatten();
        for line in &inv.lines {
            let e = by.entry(line_key(inv, line, single.as_ref())).or_insert((
                inv.currency,
                Decimal::ZERO,
                Decimal::ZERO,
                BTreeSet::new(),
            ));
            e.1 += line.net;
            e.2 += line.tax;
            e.3.insert(&inv.invoice_id);
        }
    }
    by.into_iter()
        .map(
            |((_, jurisdiction, rate, treatment), (currency, taxable, tax, ids))| TaxSummaryRow {
                currency,
                jurisdiction,
                rate,
                treatment,
                taxable: currency.round(taxable),
                tax: currency.round(tax),
                invoices: ids.len(),
            },
        )
        .collect()
}

/// `DE`, `US-CA`, or empty.
pub fn jurisdiction_code(j: Option<&Jurisdiction>) -> String {
    match j {
        None => String::new(),
        Some(j) => match &j.region {
            Some(r) => format!("{}-{}", j.country, r),
            None => j.country.clone(),
        },
    }
}

/// The treatment as the API writes it (`standard`, `reverse_charge`, ...), or empty.
pub fn treatment_code(t: Option<TaxTreatment>) -> String {
    t.and_then(|t| serde_json::to_value(t).ok())
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

/// The tax report as CSV (RFC 4180, CRLF): a header row and one row per currency,
/// jurisdiction, rate and treatment; amounts as decimals with the currency's minor units.
pub fn tax_summary_csv(rows: &[TaxSummaryRow]) -> String {
    let mut out = String::from("currency,jurisdiction,rate,treatment,taxable,tax,invoices\r\n");
    for r in rows {
        let fields = [
            r.currency.code().to_string(),
            jurisdiction_code(r.jurisdiction.as_ref()),
            r.rate.map(|d| d.normalize().to_string()).unwrap_or_default(),
            treatment_code(r.treatment),
            r.currency.round(r.taxable).to_string(),
            r.currency.round(r.tax).to_string(),
            r.invoices.to_string(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        out.push_str(&line.join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::billing::{BillingPeriod, InvoiceNumbering, StatementRun};
    use crate::domain::money::Money;
    use chrono::TimeZone;

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn line(net: &str, tax: &str, rated_tax: Option<(&str, &str)>) -> InvoiceLine {
        let rated = rated_tax.map(|(country, rate)| {
            let mut item: crate::domain::pricing::LineItem = serde_json::from_value(serde_json::json!({
                "kind": "usage", "description": "x", "quantity": "1",
                "period": {"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z"},
                "currency": "USD", "amount": net, "unrounded": net,
                "tax": {"rate": rate, "treatment": "standard", "inclusive": false,
                        "net": net, "tax": tax, "gross": "0"}
            }))
            .unwrap();
            if !country.is_empty() {
                item.tax.jurisdiction = Some(Jurisdiction {
                    country: country.into(),
                    region: None,
                });
            }
            item
        });
        InvoiceLine {
            description: "x".into(),
            provider_id: "prov".into(),
            meter: None,
            quantity: Decimal::ZERO,
            net: d(net),
            tax: d(tax),
            gross: d(net) + d(tax),
            conversion: None,
            rated,
            adjusts: None,
        }
    }

    fn invoice(id: &str, status: InvoiceStatus, lines: Vec<InvoiceLine>) -> Invoice {
        let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let net: Decimal = lines.iter().map(|l| l.net).sum();
        let tax: Decimal = lines.iter().map(|l| l.tax).sum();
        Invoice {
            invoice_id: id.into(),
            account_id: "a".into(),
            subscription_id: "s".into(),
            kind: Default::default(),
            period: BillingPeriod {
                start,
                end: start + chrono::Duration::days(1),
            },
            status,
            number: Some("ML-000001".into()),
            issuer: InvoiceNumbering::new("ML").unwrap(),
            currency: Currency::USD,
            lines,
            net_total: net,
            tax_total: tax,
            total: net + tax,
            credit_applied: d("0.00"),
            amount_due: net + tax,
            outstanding: net + tax,
            conversion: None,
            issued_at: start,
            due_date: start.date_naive(),
            auto_pay: false,
            statements: StatementRun {
                currency: Currency::USD,
                statements: vec![],
                total_billed: Money::zero(Currency::USD),
                total_tax: Money::zero(Currency::USD),
                total_fees: Money::zero(Currency::USD),
                total_payouts: Money::zero(Currency::USD),
            },
        }
    }

    #[test]
    fn filters_combine_and_empty_filters_pass_everything() {
        let inv = invoice(
            "i",
            InvoiceStatus::Open,
            vec![line("10.00", "1.90", Some(("DE", "0.19")))],
        );
        assert!(InvoiceFilter::default().matches(&inv));
        let f = InvoiceFilter {
            statuses: vec![InvoiceStatus::Paid, InvoiceStatus::Open],
            min_total: Some(d("11.90")),
            max_total: Some(d("11.90")),
            period_from: Some(inv.period.start),
            period_to: Some(inv.period.start + chrono::Duration::seconds(1)),
        };
        assert!(f.matches(&inv));
        for bad in [
            InvoiceFilter {
                statuses: vec![InvoiceStatus::Void],
                ..Default::default()
            },
            InvoiceFilter {
                min_total: Some(d("11.91")),
                ..Default::default()
            },
            InvoiceFilter {
                max_total: Some(d("11.89")),
                ..Default::default()
            },
            InvoiceFilter {
                period_to: Some(inv.period.start),
                ..Default::default()
            },
            InvoiceFilter {
                period_from: Some(inv.period.start + chrono::Duration::seconds(1)),
                ..Default::default()
            },
        ] {
            assert!(!bad.matches(&inv), "{bad:?}");
        }
    }

    #[test]
    fn only_unpaid_finalized_invoices_without_credit_notes_can_be_voided() {
        let open = invoice("i", InvoiceStatus::Open, vec![]);
        assert_eq!(check_void(&open, false, false), Ok(()));
        assert!(matches!(check_void(&open, true, false), Err(VoidError::Paid(_))));
        assert!(matches!(
            check_void(&open, false, true),
            Err(VoidError::Credited(_))
        ));
        for s in [InvoiceStatus::Paid, InvoiceStatus::Void, InvoiceStatus::Draft] {
            let inv = invoice("i", s, vec![]);
            assert!(
                matches!(check_void(&inv, false, false), Err(VoidError::Illegal(_))),
                "{s}"
            );
        }
    }

    #[test]
    fn a_credit_note_lowers_what_is_owed_first_and_credits_the_rest() {
        let mut inv = invoice(
            "i",
            InvoiceStatus::Open,
            vec![line("100.00", "19.00", Some(("DE", "0.19")))],
        );
        inv.outstanding = d("50.00");
        let credit = |amount: &str| ManualCredit {
            amount: d(amount),
            reason: Some(CreditReason::OrderChange),
            memo: Some("goodwill".into()),
        };
        let now = inv.issued_at;
        let e = manual_credit_note(&inv, Decimal::ZERO, "cn", &credit("30.00"), now).unwrap();
        assert_eq!(
            (e.status, e.outstanding, e.to_balance),
            (InvoiceStatus::Open, d("20.00"), d("0"))
        );
        assert_eq!(e.note.amount, d("30.00"));
        assert_eq!(e.note.lines[0].tax, d("-4.79")); // 30 x 19 / 119 = 4.789...
        assert_eq!(e.note.lines[0].net + e.note.lines[0].tax, d("-30.00"));
        assert!(e.note.lines[0].description.contains("order_change"));
        let e = manual_credit_note(&inv, Decimal::ZERO, "cn", &credit("80.00"), now).unwrap();
        assert_eq!(
            (e.status, e.outstanding, e.to_balance),
            (InvoiceStatus::Paid, d("0.00"), d("30.00"))
        );
        // Already credited 100 of 119: 19 left.
        assert_eq!(
            manual_credit_note(&inv, d("100"), "cn", &credit("19.01"), now),
            Err(CreditNoteError::OverCredit {
                amount: d("19.01"),
                creditable: d("19.00")
            })
        );
        assert!(manual_credit_note(&inv, d("100"), "cn", &credit("19.00"), now).is_ok());
        assert_eq!(
            manual_credit_note(&inv, Decimal::ZERO, "cn", &credit("0"), now),
            Err(CreditNoteError::NotPositive)
        );
        assert!(matches!(
            manual_credit_note(&inv, Decimal::ZERO, "cn", &credit("1.001"), now),
            Err(CreditNoteError::NotRounded { .. })
        ));
        inv.status = InvoiceStatus::Paid;
        inv.outstanding = d("0");
        let e = manual_credit_note(&inv, Decimal::ZERO, "cn", &credit("10.00"), now).unwrap();
        assert_eq!((e.status, e.to_balance), (InvoiceStatus::Paid, d("10.00")));
        inv.status = InvoiceStatus::Void;
        assert!(matches!(
            manual_credit_note(&inv, Decimal::ZERO, "cn", &credit("1.00"), now),
            Err(CreditNoteError::Status(..))
        ));
    }

    #[test]
    fn the_tax_summary_sums_finalized_invoices_per_jurisdiction_and_rate() {
        let a = invoice(
            "a",
            InvoiceStatus::Paid,
            vec![
                line("10.00", "1.90", Some(("DE", "0.19"))),
                line("5.00", "0.00", Some(("", "0"))),
            ],
        );
        let b = invoice(
            "b",
            InvoiceStatus::Open,
            vec![
                line("20.00", "3.80", Some(("DE", "0.190"))),
                line("1.00", "0.19", None),
            ],
        );
        let void = invoice(
            "v",
            InvoiceStatus::Void,
            vec![line("99.00", "18.81", Some(("DE", "0.19")))],
        );
        let rows = tax_summary([&a, &b, &void]);
        assert_eq!(rows.len(), 2, "{rows:?}");
        let de = rows.iter().find(|r| r.jurisdiction.is_some()).unwrap();
        // b's adjustment line without rated detail takes b's single tax position.
        assert_eq!((de.taxable, de.tax, de.invoices), (d("31.00"), d("5.89"), 2));
        assert_eq!(de.rate, Some(d("0.19")));
        let csv = tax_summary_csv(&rows);
        let lines: Vec<&str> = csv.split("\r\n").collect();
        assert_eq!(
            lines[0],
            "currency,jurisdiction,rate,treatment,taxable,tax,invoices"
        );
        assert_eq!(lines[1], "USD,,0,standard,5.00,0.00,1");
        assert_eq!(lines[2], "USD,DE,0.19,standard,31.00,5.89,2");
        assert_eq!(lines.len(), 4);
        assert_eq!(csv_field("a,\"b\""), "\"a,\"\"b\"\"\"");
    }
}
