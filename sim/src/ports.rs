//! The port traits implemented by [`Faulty`] over the in-memory adapters: every call goes
//! through [`Faulty::call`]. Writes may be refused as conflicts; the due and pending indexes
//! may lag.

use crate::faults::{FaultState, Faulty};
use crate::queue::SimQueue;
use chrono::{DateTime, NaiveDate, Utc};
use futures::future::BoxFuture;
use meterline_shared::adapters::memory::{
    MemoryBillingStore, MemoryBudgetStore, MemoryEventPublisher, MemoryUsageStore,
};
use meterline_shared::domain::billing::events::{BillingEvent, PaymentResult};
use meterline_shared::domain::billing::ledger::{CreditEffect, InvoiceFilter};
use meterline_shared::domain::billing::{
    Account, BillingSubscription, CreditNoteDoc, Invoice, LateFeeCharge,
};
use meterline_shared::domain::estimate::{Budget, BudgetThresholdCrossed};
use meterline_shared::domain::meter::Meter;
use meterline_shared::domain::pricing::CatalogData;
use meterline_shared::domain::usage::{AggregateRef, EventRef, Granularity, RejectedEvent, UsageAggregate};
use meterline_shared::ports::billing::{
    BillingStore, CloseCommit, CloseOutcome, CloseQueue, CloseRequest, DueSubscription, EventPublisher,
    OpenInvoice, PaymentOutcome, PendingInvoice, UpfrontOutcome,
};
use meterline_shared::ports::budgets::BudgetStore;
use meterline_shared::ports::issued::{CreditBasis, CreditNoteOutcome, IssuedInvoices, StatementEntry};
use meterline_shared::ports::usage::{AggregateChange, CommitOutcome, UsageStore};
use meterline_shared::ports::{Page, StoreError};
use rust_decimal::Decimal;
use std::sync::Mutex;

type Res<'a, T> = BoxFuture<'a, Result<T, StoreError>>;

impl UsageStore for Faulty<MemoryUsageStore> {
    fn commit<'a>(
        &'a self,
        events: &'a [EventRef<'a>],
        aggregates: &'a [AggregateRef<'a>],
        received_at: DateTime<Utc>,
    ) -> Res<'a, CommitOutcome> {
        self.call(true, move || self.inner.commit(events, aggregates, received_at))
    }
    fn put_rejected<'a>(&'a self, rejected: &'a [RejectedEvent]) -> Res<'a, ()> {
        self.call(true, move || self.inner.put_rejected(rejected))
    }
    fn aggregates_page<'a>(
        &'a self,
        account_id: &'a str,
        granularity: Granularity,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        meter: Option<Meter>,
        after: Option<&'a str>,
        limit: usize,
    ) -> Res<'a, Page<UsageAggregate>> {
        self.call(false, move || {
            self.inner
                .aggregates_page(account_id, granularity, from, to, meter, after, limit)
        })
    }
    fn aggregates_changed<'a>(
        &'a self,
        account_id: &'a str,
        granularity: Granularity,
        after: &'a str,
        before: &'a str,
        limit: usize,
    ) -> Res<'a, Vec<AggregateChange>> {
        self.call(false, move || {
            self.inner
                .aggregates_changed(account_id, granularity, after, before, limit)
        })
    }
    fn rejected_page<'a>(
        &'a self,
        account_id: Option<&'a str>,
        after: Option<&'a str>,
        limit: usize,
    ) -> Res<'a, Page<RejectedEvent>> {
        self.call(false, move || self.inner.rejected_page(account_id, after, limit))
    }
    fn get_rejected<'a>(
        &'a self,
        account_id: Option<&'a str>,
        fingerprints: &'a [String],
    ) -> Res<'a, Vec<RejectedEvent>> {
        self.call(false, move || self.inner.get_rejected(account_id, fingerprints))
    }
    fn delete_rejected<'a>(&'a self, account_id: Option<&'a str>, fingerprints: &'a [String]) -> Res<'a, ()> {
        self.call(true, move || self.inner.delete_rejected(account_id, fingerprints))
    }
    fn health(&self) -> Res<'_, ()> {
        self.call(false, move || self.inner.health())
    }
}

impl BillingStore for Faulty<MemoryBillingStore> {
    fn put_account<'a>(&'a self, account: &'a Account) -> Res<'a, ()> {
        self.call(true, move || self.inner.put_account(account))
    }
    fn account<'a>(&'a self, account_id: &'a str) -> Res<'a, Option<Account>> {
        self.call(false, move || self.inner.account(account_id))
    }
    fn put_subscription<'a>(&'a self, subscription: &'a BillingSubscription) -> Res<'a, ()> {
        self.call(true, move || self.inner.put_subscription(subscription))
    }
    fn subscription<'a>(&'a self, account_id: &'a str, id: &'a str) -> Res<'a, Option<BillingSubscription>> {
        self.call(false, move || self.inner.subscription(account_id, id))
    }
    fn account_subscriptions<'a>(&'a self, account_id: &'a str) -> Res<'a, Vec<BillingSubscription>> {
        self.call(false, move || self.inner.account_subscriptions(account_id))
    }
    fn due_subscriptions<'a>(
        &'a self,
        shard: u32,
        until: DateTime<Utc>,
        after: Option<&'a str>,
        limit: usize,
    ) -> Res<'a, Page<DueSubscription>> {
        self.call(false, move || {
            Box::pin(async move {
                let page = self.inner.due_subscriptions(shard, until, after, limit).await?;
                if after.is_some() || page.next.is_some() {
                    return Ok(page);
                }
                let items = self.faults.lagged(FaultState::due_seen, shard, page.items);
                Ok(Page { items, next: None })
            })
        })
    }
    fn put_catalog<'a>(&'a self, catalog: &'a CatalogData) -> Res<'a, ()> {
        self.call(true, move || self.inner.put_catalog(catalog))
    }
    fn catalog(&self) -> Res<'_, CatalogData> {
        self.call(false, move || self.inner.catalog())
    }
    fn invoice<'a>(&'a self, account_id: &'a str, invoice_id: &'a str) -> Res<'a, Option<Invoice>> {
        self.call(false, move || self.inner.invoice(account_id, invoice_id))
    }
    fn invoices_since<'a>(
        &'a self,
        account_id: &'a str,
        subscription_id: &'a str,
        since: DateTime<Utc>,
    ) -> Res<'a, Vec<Invoice>> {
        self.call(false, move || {
            self.inner.invoices_since(account_id, subscription_id, since)
        })
    }
    fn credit_notes<'a>(&'a self, account_id: &'a str) -> Res<'a, Vec<CreditNoteDoc>> {
        self.call(false, move || self.inner.credit_notes(account_id))
    }
    fn commit_close<'a>(&'a self, commit: &'a CloseCommit) -> Res<'a, CloseOutcome> {
        self.call(true, move || self.inner.commit_close(commit))
    }
    fn commit_upfront<'a>(&'a self, invoice: &'a Invoice) -> Res<'a, UpfrontOutcome> {
        self.call(true, move || self.inner.commit_upfront(invoice))
    }
    fn drop_upfront<'a>(&'a self, account_id: &'a str, invoice_id: &'a str) -> Res<'a, ()> {
        self.call(true, move || self.inner.drop_upfront(account_id, invoice_id))
    }
    fn number_drafts<'a>(&'a self, drafts: &'a [Invoice]) -> Res<'a, Vec<Invoice>> {
        self.call(true, move || self.inner.number_drafts(drafts))
    }
    fn pending_invoices<'a>(
        &'a self,
        shard: u32,
        until: DateTime<Utc>,
        after: Option<&'a str>,
        limit: usize,
    ) -> Res<'a, Page<PendingInvoice>> {
        self.call(false, move || {
            Box::pin(async move {
                let page = self.inner.pending_invoices(shard, until, after, limit).await?;
                if after.is_some() || page.next.is_some() {
                    return Ok(page);
                }
                let items = self.faults.lagged(FaultState::pending_seen, shard, page.items);
                Ok(Page { items, next: None })
            })
        })
    }
    fn pending_invoice<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> Res<'a, Option<PendingInvoice>> {
        self.call(false, move || self.inner.pending_invoice(account_id, invoice_id))
    }
    fn clear_pending<'a>(&'a self, done: &'a [PendingInvoice]) -> Res<'a, ()> {
        self.call(true, move || self.inner.clear_pending(done))
    }
    fn last_number<'a>(&'a self, issuer_prefix: &'a str) -> Res<'a, u64> {
        self.call(false, move || self.inner.last_number(issuer_prefix))
    }
    fn open_invoices<'a>(
        &'a self,
        shard: u32,
        due_by: NaiveDate,
        after: Option<&'a str>,
        limit: usize,
    ) -> Res<'a, Page<OpenInvoice>> {
        self.call(false, move || {
            self.inner.open_invoices(shard, due_by, after, limit)
        })
    }
    fn mark_past_due<'a>(&'a self, account_id: &'a str, invoice_id: &'a str) -> Res<'a, bool> {
        self.call(true, move || self.inner.mark_past_due(account_id, invoice_id))
    }
    fn charge_late_fee<'a>(&'a self, account_id: &'a str, charge: &'a LateFeeCharge) -> Res<'a, bool> {
        self.call(true, move || self.inner.charge_late_fee(account_id, charge))
    }
    fn unannounced_fee<'a>(&'a self, account_id: &'a str, key: &'a str) -> Res<'a, Option<LateFeeCharge>> {
        self.call(false, move || self.inner.unannounced_fee(account_id, key))
    }
    fn fee_announced<'a>(&'a self, account_id: &'a str, key: &'a str) -> Res<'a, ()> {
        self.call(true, move || self.inner.fee_announced(account_id, key))
    }
    fn unannounced_fees(&self, shard: u32) -> Res<'_, Vec<(String, LateFeeCharge)>> {
        self.call(false, move || self.inner.unannounced_fees(shard))
    }
    fn record_payment<'a>(&'a self, result: &'a PaymentResult, succeeded: bool) -> Res<'a, PaymentOutcome> {
        self.call(true, move || self.inner.record_payment(result, succeeded))
    }
}

impl IssuedInvoices for Faulty<MemoryBillingStore> {
    fn list_invoices<'a>(
        &'a self,
        account_id: &'a str,
        filter: &'a InvoiceFilter,
        after: Option<&'a str>,
        limit: usize,
    ) -> Res<'a, Page<Invoice>> {
        self.call(false, move || {
            self.inner.list_invoices(account_id, filter, after, limit)
        })
    }
    fn list_all_invoices<'a>(
        &'a self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        filter: &'a InvoiceFilter,
        after: Option<&'a str>,
        limit: usize,
    ) -> Res<'a, Page<Invoice>> {
        self.call(false, move || {
            self.inner.list_all_invoices(from, to, filter, after, limit)
        })
    }
    fn invoices_issued(&self, from: DateTime<Utc>, to: DateTime<Utc>) -> Res<'_, Vec<Invoice>> {
        self.call(false, move || self.inner.invoices_issued(from, to))
    }
    fn list_credit_notes<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: Option<&'a str>,
        after: Option<&'a str>,
        limit: usize,
    ) -> Res<'a, Page<CreditNoteDoc>> {
        self.call(false, move || {
            self.inner.list_credit_notes(account_id, invoice_id, after, limit)
        })
    }
    fn credit_note<'a>(
        &'a self,
        account_id: &'a str,
        credit_note_id: &'a str,
    ) -> Res<'a, Option<CreditNoteDoc>> {
        self.call(false, move || self.inner.credit_note(account_id, credit_note_id))
    }
    fn credited<'a>(&'a self, account_id: &'a str, invoice_id: &'a str) -> Res<'a, Decimal> {
        self.call(false, move || self.inner.credited(account_id, invoice_id))
    }
    fn payments_applied<'a>(&'a self, account_id: &'a str, invoice_id: &'a str) -> Res<'a, bool> {
        self.call(false, move || self.inner.payments_applied(account_id, invoice_id))
    }
    fn payment_recorded<'a>(&'a self, account_id: &'a str, event_id: &'a str) -> Res<'a, bool> {
        self.call(false, move || self.inner.payment_recorded(account_id, event_id))
    }
    fn invoice_for_credit<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> Res<'a, Option<CreditBasis>> {
        self.call(false, move || {
            self.inner.invoice_for_credit(account_id, invoice_id)
        })
    }
    fn void_invoice<'a>(&'a self, inv: &'a Invoice) -> Res<'a, bool> {
        self.call(true, move || self.inner.void_invoice(inv))
    }
    fn issue_credit_note<'a>(
        &'a self,
        inv: &'a Invoice,
        credited: Option<Decimal>,
        effect: &'a CreditEffect,
    ) -> Res<'a, CreditNoteOutcome> {
        self.call(true, move || self.inner.issue_credit_note(inv, credited, effect))
    }
    fn list_statements<'a>(
        &'a self,
        provider_id: &'a str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<&'a str>,
        limit: usize,
    ) -> Res<'a, Page<StatementEntry>> {
        self.call(false, move || {
            self.inner.list_statements(provider_id, from, to, after, limit)
        })
    }
    fn statement_entry_of<'a>(
        &'a self,
        provider_id: &'a str,
        period_end: DateTime<Utc>,
        invoice_id: &'a str,
    ) -> Res<'a, Option<StatementEntry>> {
        self.call(false, move || {
            self.inner.statement_entry_of(provider_id, period_end, invoice_id)
        })
    }
}

impl EventPublisher for Faulty<MemoryEventPublisher> {
    fn publish<'a>(&'a self, events: &'a [BillingEvent]) -> Res<'a, ()> {
        self.call(true, move || self.inner.publish(events))
    }
}

/// The close queue as the scheduler sends to it: the simulation's queue of close requests.
pub struct CloseSender(pub std::sync::Arc<Mutex<SimQueue>>);

impl CloseQueue for CloseSender {
    fn send<'a>(&'a self, requests: &'a [CloseRequest]) -> Res<'a, ()> {
        Box::pin(async move {
            let mut q = self.0.lock().unwrap_or_else(|e| e.into_inner());
            for r in requests {
                let body = serde_json::to_string(r).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                q.send(body);
            }
            Ok(())
        })
    }
}

impl CloseQueue for Faulty<CloseSender> {
    fn send<'a>(&'a self, requests: &'a [CloseRequest]) -> Res<'a, ()> {
        self.call(true, move || self.inner.send(requests))
    }
}

impl BudgetStore for Faulty<MemoryBudgetStore> {
    fn put_budget<'a>(&'a self, budget: &'a Budget) -> Res<'a, ()> {
        self.call(true, move || self.inner.put_budget(budget))
    }
    fn budget<'a>(&'a self, account_id: &'a str, budget_id: &'a str) -> Res<'a, Option<Budget>> {
        self.call(false, move || self.inner.budget(account_id, budget_id))
    }
    fn budgets<'a>(&'a self, account_id: &'a str) -> Res<'a, Vec<Budget>> {
        self.call(false, move || self.inner.budgets(account_id))
    }
    fn delete_budget<'a>(&'a self, account_id: &'a str, budget_id: &'a str) -> Res<'a, bool> {
        self.call(true, move || self.inner.delete_budget(account_id, budget_id))
    }
    fn budgeted_accounts(&self, shard: u32) -> Res<'_, Vec<String>> {
        self.call(false, move || self.inner.budgeted_accounts(shard))
    }
    fn claim_notification<'a>(&'a self, alert: &'a BudgetThresholdCrossed) -> Res<'a, bool> {
        self.call(true, move || self.inner.claim_notification(alert))
    }
    fn notification_unsent<'a>(&'a self, key: &'a str) -> Res<'a, bool> {
        self.call(false, move || self.inner.notification_unsent(key))
    }
    fn notification_sent<'a>(&'a self, alert: &'a BudgetThresholdCrossed) -> Res<'a, ()> {
        self.call(true, move || self.inner.notification_sent(alert))
    }
    fn unsent_notifications(&self, shard: u32) -> Res<'_, Vec<BudgetThresholdCrossed>> {
        self.call(false, move || self.inner.unsent_notifications(shard))
    }
}
