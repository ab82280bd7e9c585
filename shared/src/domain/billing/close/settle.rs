//! What a close settles once its lines are known: the conversion record, the totals, the credit
//! applied, the provider statements and the due date.

use super::{Account, CloseError, CloseInput, ConversionRecord, CreditNoteDoc, InvoiceLine, MARKETPLACE};
use crate::domain::billing::credit::{apply_credit, CreditApplication};
use crate::domain::billing::statement::{provider_statements, ProviderLine, StatementRun};
use crate::domain::fx::{convert, CurrencyPair};
use crate::domain::money::{Currency, Money};
use crate::domain::pricing::DiscountScope;
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use std::collections::BTreeMap;

/// How the invoice is converted from the price books' currency, if it is: the rate in force
/// at the end of the period, its pair validated once (each line is converted with it).
pub(crate) fn conversion_record(input: &CloseInput<'_>) -> Result<Option<ConversionRecord>, CloseError> {
    let to = input.account.currency;
    let from = input.catalog.currency();
    if from == to {
        return Ok(None);
    }
    let at = input.period.end;
    let pair = CurrencyPair::new(from, to);
    let rate = input.rate.ok_or(CloseError::MissingRate { pair, at })?;
    let probe = convert(Money::zero(from), to, rate)?;
    Ok(Some(ConversionRecord {
        from,
        to,
        rate: rate.clone(),
        inverted: probe.inverted,
        rate_for: at,
    }))
}

/// The invoice's totals: sums of its lines' rounded net and tax.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Totals {
    pub net: Decimal,
    pub tax: Decimal,
    /// `net + tax`, never negative.
    pub total: Decimal,
}

impl Totals {
    pub fn of(lines: &[InvoiceLine]) -> Result<Totals, CloseError> {
        let net: Decimal = lines.iter().map(|l| l.net).sum();
        let tax: Decimal = lines.iter().map(|l| l.tax).sum();
        let total = net + tax;
        if total < Decimal::ZERO {
            return Err(CloseError::NegativeTotal(total));
        }
        Ok(Totals { net, tax, total })
    }
}

/// The credit applied to a total: the credit notes issued now are added to the account's
/// balance first, then the balance pays what it can of the invoice.
pub(super) fn credit(
    input: &CloseInput<'_>,
    total: Decimal,
    notes: &[CreditNoteDoc],
) -> Result<CreditApplication, CloseError> {
    let account = input.account;
    let to = account.currency;
    if account.credit_balance.currency != to {
        return Err(CloseError::BalanceCurrency {
            expected: to,
            found: account.credit_balance.currency,
        });
    }
    let noted: Decimal = notes.iter().map(|c| c.amount).sum();
    let balance = Money::new(account.credit_balance.amount + noted, to);
    Ok(apply_credit(Money::new(total, to), balance)?)
}

/// The provider statements: the invoice's lines, less the credit notes' corrections. Lines
/// without a provider are the marketplace's, at a 100 % fee.
pub(super) fn statements(
    input: &CloseInput<'_>,
    lines: &[InvoiceLine],
    notes: &[CreditNoteDoc],
) -> Result<StatementRun, CloseError> {
    statement_run(input.account.currency, input.fees, lines, notes)
}

/// The provider statements of lines and credit notes in `currency`, at the providers' fees
/// (the marketplace's own lines at 100 %). Lines of a discount counted across providers are
/// marked, so each statement shows its share apart.
pub(crate) fn statement_run(
    currency: Currency,
    fees: &BTreeMap<String, Decimal>,
    lines: &[InvoiceLine],
    notes: &[CreditNoteDoc],
) -> Result<StatementRun, CloseError> {
    let mut fees = fees.clone();
    fees.insert(MARKETPLACE.to_string(), Decimal::ONE_HUNDRED);
    let provider_lines: Vec<ProviderLine> = lines
        .iter()
        .chain(notes.iter().flat_map(|c| c.lines.iter()))
        .map(|l| ProviderLine {
            provider_id: l.provider_id.clone(),
            net: l.net,
            tax: l.tax,
            discount: l
                .rated
                .as_ref()
                .is_some_and(|r| r.discount_scope.is_some_and(|s| s != DiscountScope::Book)),
        })
        .collect();
    Ok(provider_statements(currency, &provider_lines, &fees)?)
}

/// The due date: the account's payment terms from the issue date in its timezone.
pub(super) fn due_date(input: &CloseInput<'_>) -> Result<NaiveDate, CloseError> {
    due_on(input.account, input.now)
}

/// The due date of a document issued to the account at `now`: its payment terms from the issue
/// date in its timezone.
pub(crate) fn due_on(account: &Account, now: DateTime<Utc>) -> Result<NaiveDate, CloseError> {
    let issued_on = now.with_timezone(&account.timezone).date_naive();
    account
        .policy
        .terms
        .due_date(issued_on)
        .ok_or(CloseError::DueDate(account.policy.terms))
}

#[cfg(test)]
mod tests {
    use super::super::tests::{d, input_with, line, note};
    use super::*;
    use crate::domain::meter::Meter;

    #[test]
    fn no_conversion_in_the_books_currency() {
        input_with(|input| assert_eq!(conversion_record(input).unwrap(), None));
    }

    #[test]
    fn another_currency_needs_the_rate_of_the_period_end() {
        input_with(|input| {
            let mut account = input.account.clone();
            account.currency = Currency::EUR;
            let eur = CloseInput {
                account: &account,
                ..input.clone()
            };
            assert_eq!(
                conversion_record(&eur),
                Err(CloseError::MissingRate {
                    pair: CurrencyPair::new(Currency::USD, Currency::EUR),
                    at: input.period.end
                })
            );
        });
    }

    #[test]
    fn totals_add_up_lines_and_refuse_a_negative_total() {
        let lines = [
            line("p1", Some(Meter::CpuSeconds), "1", "10.00", "1.90"),
            line("p1", None, "1", "-2.00", "-0.38"),
        ];
        let t = Totals::of(&lines).unwrap();
        assert_eq!((t.net, t.tax, t.total), (d("8.00"), d("1.52"), d("9.52")));
        let negative = [line("p1", None, "1", "-2.00", "-0.38")];
        assert_eq!(Totals::of(&negative), Err(CloseError::NegativeTotal(d("-2.38"))));
    }

    #[test]
    fn credit_notes_issued_now_add_to_the_balance_before_it_is_applied() {
        input_with(|input| {
            let mut account = input.account.clone();
            account.credit_balance = Money::new(d("1.00"), Currency::USD);
            let with_balance = CloseInput {
                account: &account,
                ..input.clone()
            };
            let c = credit(&with_balance, d("5.00"), &[note("2.50")]).unwrap();
            assert_eq!(c.applied.amount, d("3.50"));
            assert_eq!(c.amount_due.amount, d("1.50"));
            assert_eq!(c.remaining_balance.amount, d("0"));
        });
    }

    #[test]
    fn statements_give_the_marketplace_its_lines_at_100_percent() {
        input_with(|input| {
            let lines = [
                line("prov_000", Some(Meter::CpuSeconds), "1", "10.00", "1.90"),
                line(MARKETPLACE, None, "1", "5.00", "0.95"),
            ];
            let run = statements(input, &lines, &[]).unwrap();
            let fee_of = |p: &str| {
                run.statements
                    .iter()
                    .find(|s| s.provider_id == p)
                    .map(|s| s.marketplace_fee.amount)
            };
            assert_eq!(fee_of("prov_000"), Some(d("1.50")));
            assert_eq!(fee_of(MARKETPLACE), Some(d("5.00")));
            assert_eq!(run.customer_total().amount, d("17.85"));
        });
    }

    #[test]
    fn the_due_date_follows_the_terms_in_the_accounts_timezone() {
        input_with(|input| {
            // 23:30 UTC on 31 January is 1 February in Berlin; net 14.
            let late = CloseInput {
                now: "2026-01-31T23:30:00Z".parse().unwrap(),
                ..input.clone()
            };
            assert_eq!(
                due_date(&late).unwrap(),
                NaiveDate::from_ymd_opt(2026, 2, 15).unwrap()
            );
        });
    }
}
