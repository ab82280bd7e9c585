//! The invoice lifecycle and invoice numbers.
//!
//! | from \ to     | open | paid | past_due | void | uncollectible |
//! |---------------|------|------|----------|------|---------------|
//! | draft         | yes  |      |          |      |               |
//! | open          |      | yes  | yes      | yes  | yes           |
//! | past_due      |      | yes  |          | yes  | yes           |
//! | uncollectible |      | yes  |          | yes  |               |
//! | paid, void    |      |      |          |      |               |
//!
//! A draft is editable and has no number; a draft that should not be sent is deleted, never
//! voided, so voided invoices always carry a number and the sequence stays gapless. `paid` and
//! `void` are final.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Where an invoice is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InvoiceStatus {
    /// Being built; lines may change; no number yet.
    Draft,
    /// Finalized: numbered, immutable, sent, awaiting payment.
    Open,
    /// Settled in full. Final.
    Paid,
    /// Open past its due date and grace period.
    PastDue,
    /// Cancelled after finalization; keeps its number. Final.
    Void,
    /// Written off as a bad debt; may still be paid (recovered) or voided later.
    Uncollectible,
}

impl InvoiceStatus {
    pub const ALL: [InvoiceStatus; 6] = [
        InvoiceStatus::Draft,
        InvoiceStatus::Open,
        InvoiceStatus::Paid,
        InvoiceStatus::PastDue,
        InvoiceStatus::Void,
        InvoiceStatus::Uncollectible,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            InvoiceStatus::Draft => "draft",
            InvoiceStatus::Open => "open",
            InvoiceStatus::Paid => "paid",
            InvoiceStatus::PastDue => "past_due",
            InvoiceStatus::Void => "void",
            InvoiceStatus::Uncollectible => "uncollectible",
        }
    }

    /// Whether `self -> to` is a legal transition. Staying in the same status is not a
    /// transition.
    pub const fn can_transition_to(self, to: InvoiceStatus) -> bool {
        use InvoiceStatus::*;
        matches!(
            (self, to),
            (Draft, Open)
                | (Open, Paid | PastDue | Void | Uncollectible)
                | (PastDue, Paid | Void | Uncollectible)
                | (Uncollectible, Paid | Void)
        )
    }

    /// The status after `self -> to`, or an error naming both if the move is not allowed.
    pub fn transition(self, to: InvoiceStatus) -> Result<InvoiceStatus, IllegalTransition> {
        if self.can_transition_to(to) {
            Ok(to)
        } else {
            Err(IllegalTransition { from: self, to })
        }
    }

    /// No transition leaves this status.
    pub fn is_final(self) -> bool {
        InvoiceStatus::ALL.iter().all(|&to| !self.can_transition_to(to))
    }

    /// The customer owes money on it (it counts towards dunning and late fees).
    pub const fn is_collectible(self) -> bool {
        matches!(self, InvoiceStatus::Open | InvoiceStatus::PastDue)
    }
}

impl fmt::Display for InvoiceStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An invoice status change that the lifecycle does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("an invoice cannot go from {from} to {to}")]
pub struct IllegalTransition {
    pub from: InvoiceStatus,
    pub to: InvoiceStatus,
}

/// How one issuer numbers its invoices: `PREFIX-000042`.
///
/// The sequence number is assigned when an invoice is finalized (draft -> open), never to a
/// draft, by an atomic counter per issuer in the store, incremented in the same conditional
/// write that finalizes the invoice. A number is therefore used exactly once and the sequence
/// has no gaps: drafts that are deleted never took one, and voided invoices keep theirs. This
/// type only formats and parses numbers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "NumberingWire", into = "NumberingWire")]
pub struct InvoiceNumbering {
    prefix: String,
    digits: u8,
}

#[derive(Serialize, Deserialize)]
struct NumberingWire {
    prefix: String,
    digits: u8,
}

impl TryFrom<NumberingWire> for InvoiceNumbering {
    type Error = InvoiceNumberError;
    fn try_from(w: NumberingWire) -> Result<Self, Self::Error> {
        InvoiceNumbering::with_digits(&w.prefix, w.digits)
    }
}

impl From<InvoiceNumbering> for NumberingWire {
    fn from(n: InvoiceNumbering) -> Self {
        NumberingWire {
            prefix: n.prefix,
            digits: n.digits,
        }
    }
}

/// Why an invoice number or numbering could not be made or read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvoiceNumberError {
    #[error(
        "invoice prefix `{0}` must be 1 to {MAX_PREFIX_LEN} characters A-Z, 0-9, starting with a letter"
    )]
    BadPrefix(String),
    #[error("invoice numbers need 1 to 20 digits, not {0}")]
    BadWidth(u8),
    #[error("invoice sequence numbers start at 1")]
    ZeroSequence,
    #[error("`{0}` is not an invoice number of this issuer")]
    NotANumber(String),
}

/// Longest invoice number prefix.
pub const MAX_PREFIX_LEN: usize = 12;
/// Default zero-padded width of the sequence part.
pub const DEFAULT_DIGITS: u8 = 6;

impl InvoiceNumbering {
    /// Numbering with the default six digits (`ACME-000042`).
    pub fn new(prefix: &str) -> Result<InvoiceNumbering, InvoiceNumberError> {
        InvoiceNumbering::with_digits(prefix, DEFAULT_DIGITS)
    }

    /// Numbering zero-padded to `digits` (wider numbers still print in full).
    pub fn with_digits(prefix: &str, digits: u8) -> Result<InvoiceNumbering, InvoiceNumberError> {
        let valid = !prefix.is_empty()
            && prefix.len() <= MAX_PREFIX_LEN
            && prefix.starts_with(|c: char| c.is_ascii_uppercase())
            && prefix
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
        if !valid {
            return Err(InvoiceNumberError::BadPrefix(prefix.to_string()));
        }
        if digits == 0 || digits > 20 {
            return Err(InvoiceNumberError::BadWidth(digits));
        }
        Ok(InvoiceNumbering {
            prefix: prefix.to_string(),
            digits,
        })
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The invoice number for sequence number `seq` (1, 2, 3, ...).
    pub fn format(&self, seq: u64) -> Result<String, InvoiceNumberError> {
        if seq == 0 {
            return Err(InvoiceNumberError::ZeroSequence);
        }
        Ok(format!(
            "{}-{:0width$}",
            self.prefix,
            seq,
            width = usize::from(self.digits)
        ))
    }

    /// The sequence number in one of this issuer's invoice numbers.
    pub fn parse(&self, number: &str) -> Result<u64, InvoiceNumberError> {
        let bad = || InvoiceNumberError::NotANumber(number.to_string());
        let digits = number
            .strip_prefix(self.prefix.as_str())
            .and_then(|rest| rest.strip_prefix('-'))
            .ok_or_else(bad)?;
        if digits.len() < usize::from(self.digits) || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let seq: u64 = digits.parse().map_err(|_| bad())?;
        // Only the canonical spelling: no extra leading zeros.
        if seq == 0 || self.format(seq)? != number {
            return Err(bad());
        }
        Ok(seq)
    }
}

#[cfg(test)]
mod tests {
    use super::InvoiceStatus::*;
    use super::*;

    /// The whole matrix, row = from, column = to, in `InvoiceStatus::ALL` order:
    /// draft, open, paid, past_due, void, uncollectible.
    const LEGAL: [[bool; 6]; 6] = [
        // to: draft  open   paid   past_d void   uncoll
        [false, true, false, false, false, false],  // from draft
        [false, false, true, true, true, true],     // from open
        [false, false, false, false, false, false], // from paid
        [false, false, true, false, true, true],    // from past_due
        [false, false, false, false, false, false], // from void
        [false, false, true, false, true, false],   // from uncollectible
    ];

    #[test]
    fn every_transition_in_the_matrix() {
        let mut legal = 0;
        for (i, from) in InvoiceStatus::ALL.into_iter().enumerate() {
            for (j, to) in InvoiceStatus::ALL.into_iter().enumerate() {
                let expected = LEGAL[i][j];
                assert_eq!(from.can_transition_to(to), expected, "{from} -> {to}");
                match from.transition(to) {
                    Ok(next) => {
                        assert!(expected, "{from} -> {to} allowed");
                        assert_eq!(next, to);
                        legal += 1;
                    }
                    Err(e) => {
                        assert!(!expected, "{from} -> {to} refused");
                        assert_eq!(e, IllegalTransition { from, to });
                        assert_eq!(e.to_string(), format!("an invoice cannot go from {from} to {to}"));
                    }
                }
            }
        }
        assert_eq!(legal, 10);
    }

    #[test]
    fn final_and_collectible_statuses() {
        let finals: Vec<_> = InvoiceStatus::ALL.into_iter().filter(|s| s.is_final()).collect();
        assert_eq!(finals, [Paid, Void]);
        let collectible: Vec<_> = InvoiceStatus::ALL
            .into_iter()
            .filter(|s| s.is_collectible())
            .collect();
        assert_eq!(collectible, [Open, PastDue]);
        // Every status is reachable from a draft.
        let mut reached = vec![Draft];
        let mut i = 0;
        while i < reached.len() {
            for to in InvoiceStatus::ALL {
                if reached[i].can_transition_to(to) && !reached.contains(&to) {
                    reached.push(to);
                }
            }
            i += 1;
        }
        assert_eq!(reached.len(), 6);
    }

    #[test]
    fn statuses_use_snake_case_names() {
        for s in InvoiceStatus::ALL {
            assert_eq!(serde_json::to_string(&s).unwrap(), format!("\"{}\"", s.as_str()));
        }
        assert_eq!(PastDue.to_string(), "past_due");
    }

    #[test]
    fn numbers_are_prefix_dash_zero_padded_sequence() {
        let n = InvoiceNumbering::new("ACME").unwrap();
        assert_eq!(n.format(42).unwrap(), "ACME-000042");
        assert_eq!(n.format(1).unwrap(), "ACME-000001");
        assert_eq!(n.format(1_234_567).unwrap(), "ACME-1234567");
        assert_eq!(n.format(0), Err(InvoiceNumberError::ZeroSequence));
        assert_eq!(n.parse("ACME-000042"), Ok(42));
        assert_eq!(n.parse("ACME-1234567"), Ok(1_234_567));
        for bad in [
            "ACME-42",
            "ACME-0000042",
            "ACME000042",
            "OTHER-000042",
            "ACME-00004x",
            "ACME-000000",
        ] {
            assert_eq!(
                n.parse(bad),
                Err(InvoiceNumberError::NotANumber(bad.into())),
                "{bad}"
            );
        }
        let wide = InvoiceNumbering::with_digits("ML2", 8).unwrap();
        assert_eq!(wide.format(7).unwrap(), "ML2-00000007");
        assert_eq!(wide.format(u64::MAX).unwrap(), "ML2-18446744073709551615");
    }

    #[test]
    fn consecutive_counters_give_consecutive_numbers() {
        let n = InvoiceNumbering::new("INV").unwrap();
        let numbers: Vec<_> = (1..=1000).map(|seq| n.format(seq).unwrap()).collect();
        for (i, num) in numbers.iter().enumerate() {
            assert_eq!(n.parse(num).unwrap(), i as u64 + 1);
        }
        // Zero padding keeps them in order as plain strings too (up to the padded width).
        assert!(numbers.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn bad_prefixes_and_widths_are_refused() {
        for bad in ["", "acme", "1ACME", "AC-ME", "ABCDEFGHIJKLM", "ÄCME"] {
            assert_eq!(
                InvoiceNumbering::new(bad),
                Err(InvoiceNumberError::BadPrefix(bad.into()))
            );
        }
        assert_eq!(
            InvoiceNumbering::with_digits("A", 0),
            Err(InvoiceNumberError::BadWidth(0))
        );
        assert_eq!(
            InvoiceNumbering::with_digits("A", 21),
            Err(InvoiceNumberError::BadWidth(21))
        );
        let json = r#"{"prefix":"acme","digits":6}"#;
        assert!(serde_json::from_str::<InvoiceNumbering>(json).is_err());
        let ok: InvoiceNumbering = serde_json::from_str(r#"{"prefix":"ACME","digits":6}"#).unwrap();
        assert_eq!(ok, InvoiceNumbering::new("ACME").unwrap());
    }
}
