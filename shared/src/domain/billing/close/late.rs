//! Late usage of earlier periods: each is re-rated with everything known now, at its own
//! invoice's rate, and the difference from what was billed so far is billed on this invoice
//! (it owes more) or credited by a credit note (it owes less).

use super::rated::rated_lines;
use super::{AdjustmentRef, CloseError, CloseInput, CreditNoteDoc, Invoice, InvoiceLine, PriorPeriod};
use crate::domain::meter::Meter;
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// Quantity, net and tax billed per (provider, meter).
type Billed = BTreeMap<(String, Option<Meter>), (Decimal, Decimal, Decimal)>;

/// A difference of what is billed for one (provider, meter): quantity, net and tax.
type Difference = ((String, Option<Meter>), Decimal, Decimal, Decimal);

/// What the late usage of one earlier period comes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Correction {
    /// Lines added to this invoice: the earlier period owes more.
    Lines(Vec<InvoiceLine>),
    /// The earlier period owes less.
    CreditNote(CreditNoteDoc),
}

/// Sums lines per (provider, meter): what was billed for each. Quantities count on usage
/// lines only (those with a meter): a fee line's quantity 1 is not usage.
fn billed<'a>(lines: impl IntoIterator<Item = &'a InvoiceLine>) -> Billed {
    let mut out = Billed::new();
    for l in lines {
        let e = out.entry((l.provider_id.clone(), l.meter)).or_default();
        if l.meter.is_some() {
            e.0 += l.quantity;
        }
        e.1 += l.net;
        e.2 += l.tax;
    }
    out
}

/// The correction of `prior` found by the close of invoice `id`, if its usage changed what it
/// owes.
pub(super) fn late_usage(
    input: &CloseInput<'_>,
    prior: &PriorPeriod<'_>,
    id: &str,
) -> Result<Option<Correction>, CloseError> {
    let original = prior.invoice;
    let now_lines = rated_lines(
        input,
        original.period,
        prior.usage,
        input.account.currency,
        original.conversion.as_ref().map(|c| &c.rate),
    )?;
    let was = billed(
        original
            .lines
            .iter()
            .filter(|l| l.adjusts.is_none())
            .chain(prior.adjusted.iter().copied()),
    );
    let diffs = differences(&was, &billed(&now_lines));
    if diffs.is_empty() {
        return Ok(None);
    }
    Ok(Some(correction(input, original, id, diffs)))
}

/// The non-zero differences `is − was`, by (provider, meter).
fn differences(was: &Billed, is: &Billed) -> Vec<Difference> {
    let mut keys: Vec<_> = was.keys().chain(is.keys()).cloned().collect();
    keys.sort();
    keys.dedup();
    let mut diffs = Vec::new();
    for key in keys {
        let w = was.get(&key).copied().unwrap_or_default();
        let n = is.get(&key).copied().unwrap_or_default();
        let (dq, dn, dt) = (n.0 - w.0, n.1 - w.1, n.2 - w.2);
        if dq.is_zero() && dn.is_zero() && dt.is_zero() {
            continue;
        }
        diffs.push((key, dq, dn, dt));
    }
    diffs
}

/// The differences as adjustment lines on this invoice, or as a credit note when they lower
/// the gross amount owed.
fn correction(input: &CloseInput<'_>, original: &Invoice, id: &str, diffs: Vec<Difference>) -> Correction {
    let gross: Decimal = diffs.iter().map(|d| d.2 + d.3).sum();
    let negative = gross < Decimal::ZERO;
    let key = if negative {
        format!("credit-note#{}#{}", original.invoice_id, id)
    } else {
        format!("adjustment#{}#{}", original.invoice_id, id)
    };
    let adjusts = AdjustmentRef {
        key: key.clone(),
        original_invoice_id: original.invoice_id.clone(),
        original_period: original.period,
    };
    let lines: Vec<InvoiceLine> = diffs
        .into_iter()
        .map(|((provider_id, meter), dq, dn, dt)| InvoiceLine {
            description: format!(
                "Late usage for {} (invoice {}): {}",
                original.period,
                original.number.as_deref().unwrap_or(&original.invoice_id),
                meter.map(|m| m.as_str()).unwrap_or("plan charges")
            ),
            provider_id,
            meter,
            quantity: dq,
            net: dn,
            tax: dt,
            gross: dn + dt,
            conversion: None,
            rated: None,
            adjusts: Some(adjusts.clone()),
        })
        .collect();
    if !negative {
        return Correction::Lines(lines);
    }
    Correction::CreditNote(CreditNoteDoc {
        credit_note_id: key,
        account_id: input.account.account_id.clone(),
        original_invoice_id: original.invoice_id.clone(),
        original_period: original.period,
        issued_with: id.to_string(),
        currency: input.account.currency,
        lines,
        amount: -gross,
        issued_at: input.now,
    })
}

#[cfg(test)]
mod tests {
    use super::super::tests::{closed_invoice, d, input_with, line};
    use super::*;

    #[test]
    fn billed_sums_per_provider_and_meter() {
        let lines = [
            line("p1", Some(Meter::CpuSeconds), "10", "1.00", "0.19"),
            line("p1", Some(Meter::CpuSeconds), "5", "0.50", "0.10"),
            line("p1", None, "0", "20.00", "3.80"),
        ];
        let b = billed(&lines);
        assert_eq!(
            b[&("p1".to_string(), Some(Meter::CpuSeconds))],
            (d("15"), d("1.50"), d("0.29"))
        );
        assert_eq!(b[&("p1".to_string(), None)], (d("0"), d("20.00"), d("3.80")));
        // A fee line (quantity 1, no meter) is no usage: an invoice that wrote it with
        // quantity 0 bills the same.
        let fee = |q: &str| billed(&[line("p1", None, q, "20.00", "3.80")]);
        assert!(differences(&fee("0"), &fee("1")).is_empty());
    }

    #[test]
    fn differences_leave_out_what_did_not_change() {
        let was = billed(&[
            line("p1", Some(Meter::CpuSeconds), "10", "1.00", "0.19"),
            line("p2", Some(Meter::GpuSeconds), "1", "2.00", "0.38"),
        ]);
        let is = billed(&[
            line("p1", Some(Meter::CpuSeconds), "10", "1.00", "0.19"),
            line("p2", Some(Meter::GpuSeconds), "3", "6.00", "1.14"),
            line("p3", Some(Meter::CpuSeconds), "2", "0.20", "0.04"),
        ]);
        let diffs = differences(&was, &is);
        let got: Vec<(&str, Decimal, Decimal, Decimal)> = diffs
            .iter()
            .map(|((p, _), q, n, t)| (p.as_str(), *q, *n, *t))
            .collect();
        assert_eq!(
            got,
            vec![
                ("p2", d("2"), d("4.00"), d("0.76")),
                ("p3", d("2"), d("0.20"), d("0.04"))
            ]
        );
    }

    #[test]
    fn more_owed_is_billed_on_this_invoice_less_owed_is_a_credit_note() {
        let original = closed_invoice();
        input_with(|input| {
            let up = vec![(
                ("p1".to_string(), Some(Meter::CpuSeconds)),
                d("5"),
                d("0.50"),
                d("0.10"),
            )];
            match correction(input, &original, "inv_new", up) {
                Correction::Lines(lines) => {
                    assert_eq!(lines.len(), 1);
                    let a = lines[0].adjusts.as_ref().unwrap();
                    assert_eq!(a.key, format!("adjustment#{}#inv_new", original.invoice_id));
                    assert_eq!(lines[0].gross, d("0.60"));
                }
                other => panic!("expected lines, got {other:?}"),
            }
            let down = vec![(
                ("p1".to_string(), Some(Meter::CpuSeconds)),
                d("-5"),
                d("-0.50"),
                d("-0.10"),
            )];
            match correction(input, &original, "inv_new", down) {
                Correction::CreditNote(note) => {
                    assert_eq!(note.amount, d("0.60"));
                    assert_eq!(
                        note.credit_note_id,
                        format!("credit-note#{}#inv_new", original.invoice_id)
                    );
                    assert_eq!(note.issued_with, "inv_new");
                }
                other => panic!("expected a credit note, got {other:?}"),
            }
        });
    }
}
