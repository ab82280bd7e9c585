//! After the close: the scheduled overdue check and the payment results, over the ports.
//!
//! * [`run_overdue_check`]: every invoice with something outstanding and a due date passed is
//!   checked with [`check_overdue`] in the account's timezone; a late `open` invoice becomes
//!   `past_due`, and the late fee of the current fee period is charged once (its key is written
//!   only if new), whatever the number of runs. `InvoiceOverdue` is published when something
//!   changed.
//! * [`apply_payment_result`]: `PaymentSucceeded` lowers the outstanding amount (to `paid` at
//!   zero), `PaymentFailed` is recorded; each event id is applied once. An invoice brought to
//!   `paid` publishes `InvoicePaid` (the API's event: same id, same detail), at least once: a
//!   failed publish is an error, and the redelivered result (a `Duplicate`) publishes it again.

use crate::domain::billing::events::{paid_event, InvoiceOverdue, PaymentResult};
use crate::domain::billing::{
    check_overdue, BillingEvent, Invoice, InvoiceDue, InvoiceStatus, LateFeeCharge, OverdueError,
};
use crate::domain::money::Money;
use crate::ports::billing::{BillingStore, EventPublisher, PaymentOutcome, DUE_SHARDS};
use crate::ports::StoreError;
use chrono::{DateTime, Days, Utc};

/// What an overdue run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverdueSummary {
    pub checked: usize,
    pub marked_past_due: usize,
    pub fees_charged: usize,
    /// Late fees an earlier check charged and failed to announce, announced by this one.
    pub announced_late: usize,
    /// The late fees charged, summed per currency code.
    pub late_fees: std::collections::BTreeMap<&'static str, rust_decimal::Decimal>,
}

#[derive(Debug, thiserror::Error)]
pub enum CollectionError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("invoice {invoice_id}: {source}")]
    Overdue {
        invoice_id: String,
        source: OverdueError,
    },
    #[error("{0}")]
    Invalid(String),
}

/// Checks every invoice due by `now` (in any timezone).
pub async fn run_overdue_check(
    store: &dyn BillingStore,
    publisher: &dyn EventPublisher,
    now: DateTime<Utc>,
) -> Result<OverdueSummary, CollectionError> {
    let mut summary = OverdueSummary::default();
    // A day ahead of UTC covers every timezone; `check_overdue` decides in the account's.
    let due_by = now
        .date_naive()
        .checked_add_days(Days::new(1))
        .unwrap_or(now.date_naive());
    for shard in 0..DUE_SHARDS {
        summary.announced_late += announce_unannounced(store, publisher, shard).await?;
        let mut after: Option<String> = None;
        loop {
            let page = store.open_invoices(shard, due_by, after.as_deref(), 500).await?;
            for open in &page.items {
                let Some(invoice) = store.invoice(&open.account_id, &open.invoice_id).await? else {
                    continue;
                };
                let Some(account) = store.account(&open.account_id).await? else {
                    continue;
                };
                summary.checked += 1;
                let due = InvoiceDue {
                    invoice_id: invoice.invoice_id.clone(),
                    status: invoice.status,
                    issued_at: invoice.issued_at,
                    outstanding: Money::new(invoice.outstanding, invoice.currency),
                };
                let check =
                    check_overdue(&due, &account.policy, account.timezone, now).map_err(|source| {
                        CollectionError::Overdue {
                            invoice_id: invoice.invoice_id.clone(),
                            source,
                        }
                    })?;
                if !check.is_late {
                    continue;
                }
                let marked =
                    check.mark_past_due && store.mark_past_due(&open.account_id, &open.invoice_id).await?;
                let charged = match &check.fee {
                    Some(fee) => store.charge_late_fee(&open.account_id, fee).await?,
                    None => false,
                };
                summary.marked_past_due += usize::from(marked);
                summary.fees_charged += usize::from(charged);
                if let Some(fee) = check.fee.as_ref().filter(|_| charged) {
                    *summary.late_fees.entry(fee.amount.currency.code()).or_default() += fee.amount.amount;
                }
                // The fee to announce: charged now, or charged by an earlier check that failed or
                // stopped before publishing (its event would be lost otherwise).
                let fee = match &check.fee {
                    Some(fee) if charged => Some(fee),
                    Some(fee) => store
                        .unannounced_fee(&open.account_id, &fee.key)
                        .await?
                        .map(|_| fee),
                    None => None,
                };
                if marked || fee.is_some() {
                    let event = overdue_event(&invoice, fee, charged);
                    publisher.publish(&[event]).await?;
                    if let Some(fee) = fee {
                        store.fee_announced(&open.account_id, &fee.key).await?;
                    }
                }
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    tracing::info!(
        checked = summary.checked,
        marked_past_due = summary.marked_past_due,
        fees_charged = summary.fees_charged,
        "overdue check done"
    );
    Ok(summary)
}

/// Announces the late fees of `shard` that earlier checks charged and did not announce, whatever
/// has become of their invoices since (paid, or in a later fee period: no check computes those
/// fees again). The event is the one the charging check would have sent, with the invoice as it
/// is now. A listed fee found announced (its check stopped before delisting it) is only
/// delisted. Returns how many were announced.
async fn announce_unannounced(
    store: &dyn BillingStore,
    publisher: &dyn EventPublisher,
    shard: u32,
) -> Result<usize, CollectionError> {
    let mut announced = 0;
    for (account_id, fee) in store.unannounced_fees(shard).await? {
        let invoice = match store.unannounced_fee(&account_id, &fee.key).await? {
            Some(_) => store.invoice(&account_id, &fee.invoice_id).await?,
            None => None,
        };
        if let Some(invoice) = invoice {
            publisher
                .publish(&[overdue_event(&invoice, Some(&fee), false)])
                .await?;
            tracing::info!(
                invoice_id = %fee.invoice_id,
                fee_period = fee.period_index,
                "late fee left unannounced by an earlier check announced"
            );
            announced += 1;
        }
        store.fee_announced(&account_id, &fee.key).await?;
    }
    Ok(announced)
}

/// `InvoiceOverdue` of `invoice` as read, with `fee` (of the current fee period) if it is
/// announced; `charged_now`: the fee is not in the outstanding amount read yet.
#[allow(clippy::expect_used)] // Cannot fail: derived Serialize of the event detail cannot fail.
fn overdue_event(invoice: &Invoice, fee: Option<&LateFeeCharge>, charged_now: bool) -> BillingEvent {
    let period = fee.map_or(0, |f| f.period_index);
    let detail = InvoiceOverdue {
        event_id: format!("invoice-overdue#{}#{period}", invoice.invoice_id),
        invoice_id: invoice.invoice_id.clone(),
        account_id: invoice.account_id.clone(),
        currency: invoice.currency.code().to_string(),
        outstanding: invoice.outstanding
            + fee
                .filter(|_| charged_now)
                .map_or(Default::default(), |f| f.amount.amount),
        late_fee: fee.map(|f| f.amount.amount),
        fee_period: period,
    };
    BillingEvent {
        source: None,
        detail_type: "InvoiceOverdue".into(),
        detail: serde_json::to_value(&detail).expect("event serializes"),
    }
}

/// Attempts when the invoice changed between read and write. Of n payments of one invoice
/// applied at once, each round's optimistic write lets at least one through, so the last needs
/// n - 1 retries: 5 failed one of eight concurrent partial payments in a CI run (the invocation
/// would fail and be retried, but the burst is ordinary for a payment service's batch). Beyond
/// this the invocation fails and its event is delivered again.
const MAX_CONFLICTS: u32 = 24;

/// Applies a `PaymentSucceeded` (`succeeded`) or `PaymentFailed` result, once per event id, and
/// publishes `InvoicePaid` when a success leaves the invoice `paid`.
///
/// Publishing is after the write, so it is at least once by retry: if it fails, the error goes
/// back to the caller (the Lambda invocation fails and is retried), and the retry finds this
/// event applied (`Duplicate`) and publishes again if the invoice is paid. The event is built
/// from the stored invoice alone ([`paid_event`]), so every publish, from here or from the API's
/// mark paid and credit notes, is the same event and consumers dedupe on its id.
pub async fn apply_payment_result(
    store: &dyn BillingStore,
    publisher: &dyn EventPublisher,
    result: &PaymentResult,
    succeeded: bool,
) -> Result<PaymentOutcome, CollectionError> {
    let mut attempt = 0;
    let outcome = loop {
        match store.record_payment(result, succeeded).await {
            Err(StoreError::Conflict(_)) if attempt < MAX_CONFLICTS => attempt += 1,
            other => break other?,
        }
    };
    // This payment paid the invoice, or it was applied before (a redelivery, perhaps after a
    // failed publish): publish if the invoice is paid now.
    let may_have_paid = match &outcome {
        PaymentOutcome::Applied { status, .. } => *status == InvoiceStatus::Paid,
        PaymentOutcome::Duplicate => true,
        PaymentOutcome::Recorded { .. } => false,
        PaymentOutcome::Rejected(why) => {
            // Not retried: it would not match the next time either. The log keeps it.
            tracing::error!(
                event_id = %result.event_id,
                invoice_id = %result.invoice_id,
                account_id = %result.account_id,
                currency = %result.currency,
                amount = %result.amount,
                succeeded,
                reason = %why,
                "payment result rejected: it does not match its invoice"
            );
            false
        }
    };
    if succeeded && may_have_paid {
        if let Some(invoice) = store.invoice(&result.account_id, &result.invoice_id).await? {
            if invoice.status == InvoiceStatus::Paid {
                publisher.publish(&[paid_event(&invoice)]).await?;
            }
        }
    }
    Ok(outcome)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adapters::memory::{MemoryBillingStore, MemoryEventPublisher};
    use crate::domain::billing::{sample, BillingPeriod, Invoice, InvoiceNumbering, StatementRun};
    use crate::domain::money::Currency;
    use crate::ports::billing::{due_shard, DUE_SHARDS};
    use chrono::{Duration, TimeZone};
    use futures::future::BoxFuture;
    use rust_decimal::Decimal;
    use std::sync::atomic::{AtomicU32, Ordering};

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// Records what it publishes, after failing its first `failures` calls.
    #[derive(Default)]
    struct FlakyPublisher {
        failures: AtomicU32,
        published: MemoryEventPublisher,
    }

    impl EventPublisher for FlakyPublisher {
        fn publish<'a>(&'a self, events: &'a [BillingEvent]) -> BoxFuture<'a, Result<(), StoreError>> {
            Box::pin(async move {
                let left = self.failures.load(Ordering::SeqCst);
                if left > 0 {
                    self.failures.store(left - 1, Ordering::SeqCst);
                    return Err(StoreError::Unavailable("bus down".into()));
                }
                self.published.publish(events).await
            })
        }
    }

    fn store() -> MemoryBillingStore {
        let store = MemoryBillingStore::new();
        run(store.put_account(&sample::account("acct_a", Currency::USD))).unwrap();
        let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        let usd = |a: &str| Money::new(d(a), Currency::USD);
        store.insert_invoice(Invoice {
            invoice_id: "inv_1".into(),
            account_id: "acct_a".into(),
            subscription_id: "sub_a".into(),
            kind: Default::default(),
            period: BillingPeriod {
                start,
                end: start + Duration::days(1),
            },
            status: InvoiceStatus::Open,
            number: Some("ML-000001".into()),
            issuer: InvoiceNumbering::new("ML").unwrap(),
            currency: Currency::USD,
            lines: vec![],
            net_total: d("10.00"),
            tax_total: Decimal::ZERO,
            total: d("10.00"),
            credit_applied: Decimal::ZERO,
            amount_due: d("10.00"),
            outstanding: d("10.00"),
            conversion: None,
            issued_at: start + Duration::days(1),
            due_date: start.date_naive() + Days::new(15),
            auto_pay: true,
            statements: StatementRun {
                currency: Currency::USD,
                statements: vec![],
                total_billed: usd("0"),
                total_tax: usd("0"),
                total_fees: usd("0"),
                total_payouts: usd("0"),
            },
        });
        store
    }

    fn payment(event_id: &str, amount: &str) -> PaymentResult {
        PaymentResult {
            event_id: event_id.into(),
            invoice_id: "inv_1".into(),
            top_up_id: None,
            account_id: "acct_a".into(),
            currency: "USD".into(),
            amount: d(amount),
            at: Utc.with_ymd_and_hms(2026, 11, 5, 0, 0, 0).unwrap(),
            reason: None,
        }
    }

    #[test]
    fn a_payment_that_pays_the_invoice_publishes_invoice_paid_at_least_once() {
        let store = store();
        let publisher = FlakyPublisher::default();
        let pay = |id: &str, amount: &str, ok: bool| {
            run(apply_payment_result(&store, &publisher, &payment(id, amount), ok))
        };
        let paid_events = || {
            publisher
                .published
                .events()
                .into_iter()
                .filter(|e| e.detail_type == "InvoicePaid")
                .collect::<Vec<_>>()
        };

        // A partial payment and a failure: nothing is paid, nothing published.
        assert_eq!(
            pay("pay_1", "4.00", true).unwrap(),
            PaymentOutcome::Applied {
                status: InvoiceStatus::Open,
                outstanding: d("6.00")
            }
        );
        pay("pay_f", "6.00", false).unwrap();
        assert_eq!(publisher.published.events(), vec![]);

        // The rest: applied, but the bus is down: the result fails (so it is delivered again).
        publisher.failures.store(1, Ordering::SeqCst);
        assert!(matches!(
            pay("pay_2", "6.00", true),
            Err(CollectionError::Store(StoreError::Unavailable(_)))
        ));
        let inv = run(store.invoice("acct_a", "inv_1")).unwrap().unwrap();
        assert_eq!(
            (inv.status, inv.outstanding),
            (InvoiceStatus::Paid, Decimal::ZERO)
        );
        assert_eq!(paid_events(), vec![]);

        // Redelivered: a duplicate, and InvoicePaid goes out, the API's event exactly.
        assert_eq!(pay("pay_2", "6.00", true).unwrap(), PaymentOutcome::Duplicate);
        assert_eq!(paid_events(), vec![paid_event(&inv)]);
        assert_eq!(paid_events()[0].event_id(), "invoice-paid#inv_1");
        assert_eq!(paid_events()[0].detail["total"], "10.00");
        // Again: the same event again (consumers dedupe on its id).
        assert_eq!(pay("pay_2", "6.00", true).unwrap(), PaymentOutcome::Duplicate);
        assert_eq!(paid_events(), vec![paid_event(&inv), paid_event(&inv)]);

        // A payment for the paid invoice, or a failure, did not pay it: nothing more.
        assert_eq!(
            pay("pay_3", "1.00", true).unwrap(),
            PaymentOutcome::Recorded {
                status: InvoiceStatus::Paid
            }
        );
        pay("pay_f", "6.00", false).unwrap();
        assert_eq!(paid_events().len(), 2);
        assert_eq!(publisher.published.events().len(), 2);
    }

    /// A check that charged a late fee and then failed to publish `InvoiceOverdue` (the bus
    /// down, or the instance stopped) left the fee charged: the next check announces it, once.
    /// Found by the simulation (seeds 1 and 2 of `meterline-sim --steps 300`).
    #[test]
    fn a_late_fee_charged_by_a_check_that_failed_to_publish_is_announced_by_the_next() {
        let store = store();
        let publisher = FlakyPublisher::default();
        publisher.failures.store(1, Ordering::SeqCst);
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        assert!(run(run_overdue_check(&store, &publisher, at)).is_err());
        assert_eq!(store.fees().len(), 1);
        assert_eq!(publisher.published.events(), vec![]);
        for hour in 1..4 {
            let s = run(run_overdue_check(&store, &publisher, at + Duration::hours(hour))).unwrap();
            assert_eq!((s.checked, s.fees_charged), (1, 0));
        }
        let events = publisher.published.events();
        assert_eq!(events.len(), 1, "announced once: {events:?}");
        assert_eq!(events[0].event_id(), "invoice-overdue#inv_1#0");
        let detail: InvoiceOverdue = serde_json::from_value(events[0].detail.clone()).unwrap();
        let fee = store.fees()[0].amount.amount;
        assert_eq!(detail.late_fee, Some(fee));
        assert_eq!(detail.outstanding, d("10.00") + fee);
    }

    /// A check that charged a late fee and failed to publish, and then the invoice paid before
    /// the next check: no later check computes that fee again (the invoice is not open), so it
    /// was never announced. The fee is listed unannounced when charged and every check first
    /// announces the listed fees. Found by the simulation (seeds 34 and 41).
    #[test]
    fn a_late_fee_left_unannounced_is_announced_after_its_invoice_is_paid() {
        let store = store();
        let publisher = FlakyPublisher::default();
        publisher.failures.store(1, Ordering::SeqCst);
        let at = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        assert!(run(run_overdue_check(&store, &publisher, at)).is_err());
        let fee = store.fees()[0].amount.amount;
        let total = (d("10.00") + fee).to_string();
        run(apply_payment_result(
            &store,
            &publisher,
            &payment("pay_all", &total),
            true,
        ))
        .unwrap();
        for hour in 1..4 {
            let s = run(run_overdue_check(&store, &publisher, at + Duration::hours(hour))).unwrap();
            assert_eq!((s.checked, s.fees_charged), (0, 0), "the invoice is paid");
            assert_eq!(s.announced_late, usize::from(hour == 1));
        }
        let overdue: Vec<_> = publisher
            .published
            .events()
            .into_iter()
            .filter(|e| e.detail_type == "InvoiceOverdue")
            .collect();
        assert_eq!(overdue.len(), 1, "announced once: {overdue:?}");
        assert_eq!(overdue[0].event_id(), "invoice-overdue#inv_1#0");
        let detail: InvoiceOverdue = serde_json::from_value(overdue[0].detail.clone()).unwrap();
        assert_eq!(detail.late_fee, Some(fee));
        assert!(run(store.unannounced_fees(due_shard("acct_a", DUE_SHARDS)))
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_payment_that_pays_in_full_publishes_once_per_delivery() {
        let store = store();
        let publisher = MemoryEventPublisher::new();
        let result = payment("pay_all", "10.00");
        assert_eq!(
            run(apply_payment_result(&store, &publisher, &result, true)).unwrap(),
            PaymentOutcome::Applied {
                status: InvoiceStatus::Paid,
                outstanding: Decimal::ZERO
            }
        );
        let events = publisher.events();
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].detail_type.as_str(), events[0].event_id()),
            ("InvoicePaid", "invoice-paid#inv_1")
        );
        assert_eq!(events[0].detail["number"], "ML-000001");
        // An unknown invoice: rejected, nothing written or published.
        let mut other = payment("pay_x", "1.00");
        other.invoice_id = "inv_nope".into();
        assert!(matches!(
            run(apply_payment_result(&store, &publisher, &other, true)).unwrap(),
            PaymentOutcome::Rejected(crate::ports::billing::PaymentMismatch::UnknownInvoice { .. })
        ));
        assert_eq!(publisher.events().len(), 1);
    }

    /// Each kind of mismatch: rejected, nothing written, nothing published; then the matching
    /// result applies.
    #[test]
    fn payment_results_that_do_not_match_their_invoice_are_rejected_one_by_one() {
        use crate::ports::billing::PaymentMismatch as M;
        let store = store();
        run(store.put_account(&sample::account("acct_b", Currency::USD))).unwrap();
        let publisher = MemoryEventPublisher::new();
        let with = |f: &dyn Fn(&mut PaymentResult)| {
            let mut r = payment("pay_m", "10.00");
            f(&mut r);
            r
        };
        type Expected = fn(&M) -> bool;
        let cases: Vec<(PaymentResult, bool, Expected)> = vec![
            (with(&|r| r.account_id = "acct_b".into()), true, |m| {
                matches!(m, M::UnknownInvoice { .. })
            }),
            (with(&|r| r.currency = "EUR".into()), true, |m| {
                matches!(m, M::Currency { .. })
            }),
            (with(&|r| r.currency = "EUR".into()), false, |m| {
                matches!(m, M::Currency { .. })
            }),
            (with(&|r| r.amount = d("10.01")), true, |m| {
                matches!(m, M::Overpaid { .. })
            }),
            (with(&|r| r.amount = d("0")), true, |m| matches!(m, M::Amount(_))),
            (with(&|r| r.amount = d("-1")), true, |m| matches!(m, M::Amount(_))),
            (with(&|r| r.amount = d("0.001")), true, |m| {
                matches!(m, M::Amount(_))
            }),
        ];
        for (result, succeeded, expected) in cases {
            let outcome = run(apply_payment_result(&store, &publisher, &result, succeeded)).unwrap();
            match &outcome {
                PaymentOutcome::Rejected(m) => assert!(expected(m), "{result:?}: {m}"),
                other => panic!("{result:?}: {other:?}"),
            }
            let inv = run(store.invoice("acct_a", "inv_1")).unwrap().unwrap();
            assert_eq!((inv.status, inv.outstanding), (InvoiceStatus::Open, d("10.00")));
        }
        assert!(publisher.events().is_empty());
        // Rejections are not recorded: the same event id applies once it matches.
        assert_eq!(
            run(apply_payment_result(
                &store,
                &publisher,
                &payment("pay_m", "10.00"),
                true
            ))
            .unwrap(),
            PaymentOutcome::Applied {
                status: InvoiceStatus::Paid,
                outstanding: Decimal::ZERO
            }
        );
        // A check of the invoice's own account, independent of how the store reads it.
        let inv = run(store.invoice("acct_a", "inv_1")).unwrap().unwrap();
        let mut foreign = payment("pay_f", "1.00");
        foreign.account_id = "acct_b".into();
        assert!(matches!(
            crate::ports::billing::check_payment(&foreign, &inv, true),
            Err(M::Account { .. })
        ));
    }
}
