//! Spending credit: usage drawn down as it is rated, and invoices paid with what is left.

use super::entry::{Cause, EntryKind, LedgerEntry};
use super::error::CreditError;
use super::grant::{minor_units, non_empty, ChargeScope};
use super::hold::split_front;
use super::ledger::{CreditLedger, OpKey};
use crate::domain::money::{Currency, Money};
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;

/// A batch of rated usage to draw from the balance: from a running job's hold first when
/// `hold_id` is given, then from the grants `scope` may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawDown {
    pub id: String,
    pub amount: Money,
    pub scope: ChargeScope,
    pub hold_id: Option<String>,
    pub at: DateTime<Utc>,
}

/// One invoice line to pay with credit: its amount (rounded, in the invoice's currency) and
/// what it charges for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceCharge {
    pub amount: Decimal,
    pub scope: ChargeScope,
}

/// An invoice closing at `at`: its lines, paid in order from the grants each may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceCredit {
    pub invoice_id: String,
    pub currency: Currency,
    pub lines: Vec<InvoiceCharge>,
    pub at: DateTime<Utc>,
}

impl CreditLedger {
    /// Draws a batch's rated cost down; what no grant covers is the entry's `uncovered` (the
    /// usage happened: it is invoiced, not refused).
    pub fn draw_down(&mut self, req: &DrawDown) -> Result<Vec<LedgerEntry>, CreditError> {
        self.once(OpKey::DrawDown(req.id.clone()), format!("{req:?}"), |l| {
            non_empty("draw-down batch id", &req.id)?;
            minor_units("draw-down amount", req.amount)?;
            let currency = req.amount.currency;
            let cause = Cause::DrawDown {
                batch_id: req.id.clone(),
                hold_id: req.hold_id.clone(),
            };
            let mut left = req.amount.amount;
            if let Some(hold_id) = &req.hold_id {
                let hold = l.open_hold(hold_id, currency, req.at)?;
                let (taken, rest) = split_front(&hold.portions, left);
                left -= taken.iter().map(|p| p.amount).sum::<Decimal>();
                if let Some(h) = l.holds.get_mut(hold_id) {
                    h.portions = rest;
                }
                if !taken.is_empty() {
                    l.record(
                        req.at,
                        currency,
                        EntryKind::DrawnFromHold,
                        cause.clone(),
                        taken,
                        Decimal::ZERO,
                    );
                }
            }
            if left > Decimal::ZERO {
                let (portions, uncovered) = l.plan(currency, &req.scope, req.at, left);
                l.record(req.at, currency, EntryKind::DrawnDown, cause, portions, uncovered);
            }
            Ok(())
        })
    }

    /// Pays an invoice's lines with the remaining grants, line by line in order: one entry per
    /// line that credit paid, saying which grants paid what and what is left to pay.
    pub fn apply_to_invoice(&mut self, req: &InvoiceCredit) -> Result<Vec<LedgerEntry>, CreditError> {
        self.once(OpKey::Invoice(req.invoice_id.clone()), format!("{req:?}"), |l| {
            non_empty("invoice id", &req.invoice_id)?;
            for line in &req.lines {
                minor_units("invoice line amount", Money::new(line.amount, req.currency))?;
            }
            for (i, line) in req.lines.iter().enumerate() {
                let (portions, uncovered) = l.plan(req.currency, &line.scope, req.at, line.amount);
                if portions.is_empty() {
                    continue;
                }
                let cause = Cause::Invoice {
                    invoice_id: req.invoice_id.clone(),
                    line: i,
                };
                l.record(
                    req.at,
                    req.currency,
                    EntryKind::AppliedToInvoice,
                    cause,
                    portions,
                    uncovered,
                );
            }
            Ok(())
        })
    }
}
