//! In-memory billing adapters with the DynamoDB adapter's semantics (conditional writes, one
//! lock per commit), for domain tests, property tests and benchmarks.

use super::{get_pair, Locked};
use crate::domain::billing::events::BillingEvent;
use crate::domain::billing::events::PaymentResult;
use crate::domain::billing::ledger::apply_payment;
use crate::domain::billing::ledger::{CreditEffect, InvoiceFilter};
use crate::domain::billing::statement::ProviderStatement;
use crate::domain::billing::upfront::{upfront_invoice_id, upfront_purchases};
use crate::domain::billing::{Account, BillingSubscription, CreditNoteDoc, Invoice};
use crate::domain::billing::{InvoiceStatus, LateFeeCharge};
use crate::domain::pricing::CatalogData;
use crate::ports::billing::{
    check_payment, due_shard, numbering_batches, BillingStore, CloseCommit, CloseOutcome, DueSubscription,
    EventPublisher, OpenInvoice, PaymentMismatch, PaymentOutcome, PendingInvoice, UpfrontOutcome, DUE_SHARDS,
};
use crate::ports::issued::{cursor_instant, CreditBasis, CreditNoteOutcome, IssuedInvoices, StatementEntry};
use crate::ports::{Page, StoreError};
use chrono::NaiveDate;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;

#[derive(Default)]
struct Inner {
    accounts: HashMap<String, Account>,
    subscriptions: BTreeMap<(String, String), BillingSubscription>,
    catalog: CatalogData,
    /// (account, invoice id) -> invoice.
    invoices: BTreeMap<(String, String), Invoice>,
    credit_notes: BTreeMap<(String, String), CreditNoteDoc>,
    counters: HashMap<String, u64>,
    /// (provider, period end, invoice id) -> statement.
    statements: BTreeMap<(String, DateTime<Utc>, String), ProviderStatement>,
    /// Late fees by key.
    fees: BTreeMap<String, LateFeeCharge>,
    /// Keys of the fees whose `InvoiceOverdue` is not known to be published.
    /// Fees charged and not known to be announced: key to account.
    unannounced: BTreeMap<String, String>,
    /// Payment results applied, by event id.
    payments: BTreeMap<String, PaymentResult>,
    /// Event ids of the successful payment results.
    succeeded: BTreeSet<String>,
    /// (account, invoice id) -> the sum of its manual credit notes.
    credited: BTreeMap<(String, String), Decimal>,
    /// (account, credit note id) -> the part of a manual credit note put on the account's
    /// credit balance (the rest lowered what the invoice owed). Kept for the simulation's check
    /// of the balance; the DynamoDB store keeps only the balance.
    to_balance: BTreeMap<(String, String), Decimal>,
    /// Statement entries of voided invoices: (provider, period end, invoice id).
    voided: BTreeSet<(String, DateTime<Utc>, String)>,
    /// Pending markers: (account, invoice id) -> marker.
    pending: BTreeMap<(String, String), PendingInvoice>,
    /// Upfront purchases dropped without an invoice: (account, invoice id).
    dropped_upfronts: BTreeSet<(String, String)>,
    commits: usize,
    numberings: usize,
}

/// A [`BillingStore`] in memory.
#[derive(Default)]
pub struct MemoryBillingStore {
    inner: Locked<Inner>,
}

impl MemoryBillingStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Every invoice, by account and id.
    pub fn invoices(&self) -> Vec<Invoice> {
        self.inner.lock().invoices.values().cloned().collect()
    }

    /// Stores an issued invoice as given, replacing one with its id (fixtures and tests; closes
    /// write invoices through `commit_close`).
    pub fn insert_invoice(&self, invoice: Invoice) {
        self.inner
            .lock()
            .invoices
            .insert((invoice.account_id.clone(), invoice.invoice_id.clone()), invoice);
    }

    /// Every credit note.
    pub fn all_credit_notes(&self) -> Vec<CreditNoteDoc> {
        self.inner.lock().credit_notes.values().cloned().collect()
    }

    /// (account, invoice id) -> the sum of its manual credit notes, as the store keeps it to
    /// condition the next note on.
    pub fn manual_credited(&self) -> BTreeMap<(String, String), Decimal> {
        self.inner.lock().credited.clone()
    }

    /// (account, credit note id) -> the part of each manual credit note put on the account's
    /// credit balance.
    pub fn to_balance(&self) -> BTreeMap<(String, String), Decimal> {
        self.inner.lock().to_balance.clone()
    }

    /// Provider statement entries: (provider, period end, invoice id, statement).
    pub fn statements(&self) -> Vec<(String, DateTime<Utc>, String, ProviderStatement)> {
        self.inner
            .lock()
            .statements
            .iter()
            .map(|((p, t, i), s)| (p.clone(), *t, i.clone(), s.clone()))
            .collect()
    }

    /// Late fees charged.
    pub fn fees(&self) -> Vec<LateFeeCharge> {
        self.inner.lock().fees.values().cloned().collect()
    }

    /// Committed closes.
    /// Numbering writes made (each numbers up to
    /// [`NUMBERING_BATCH`](crate::ports::billing::NUMBERING_BATCH) drafts of one issuer).
    pub fn numberings(&self) -> usize {
        self.inner.lock().numberings
    }

    pub fn commits(&self) -> usize {
        self.inner.lock().commits
    }
}

impl BillingStore for MemoryBillingStore {
    fn put_account<'a>(&'a self, account: &'a Account) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.inner
                .lock()
                .accounts
                .insert(account.account_id.clone(), account.clone());
            Ok(())
        })
    }

    fn account<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<Option<Account>, StoreError>> {
        Box::pin(async move { Ok(self.inner.lock().accounts.get(account_id).cloned()) })
    }

    fn put_subscription<'a>(&'a self, s: &'a BillingSubscription) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.inner
                .lock()
                .subscriptions
                .insert((s.account_id.clone(), s.subscription_id.clone()), s.clone());
            Ok(())
        })
    }

    fn subscription<'a>(
        &'a self,
        account_id: &'a str,
        subscription_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<BillingSubscription>, StoreError>> {
        Box::pin(async move {
            Ok(get_pair(
                &self.inner.lock().subscriptions,
                account_id,
                subscription_id,
            ))
        })
    }

    fn account_subscriptions<'a>(
        &'a self,
        account_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<BillingSubscription>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .inner
                .lock()
                .subscriptions
                .values()
                .filter(|s| s.account_id == account_id)
                .cloned()
                .collect())
        })
    }

    fn due_subscriptions<'a>(
        &'a self,
        shard: u32,
        until: DateTime<Utc>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<DueSubscription>, StoreError>> {
        Box::pin(async move {
            let inner = self.inner.lock();
            let mut due: Vec<(String, DueSubscription)> = inner
                .subscriptions
                .values()
                .filter(|s| due_shard(&s.subscription_id, DUE_SHARDS) == shard)
                .flat_map(|s| inner.due_entries(s))
                .filter(|(_, d)| d.next_close_at <= until)
                .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
                .collect();
            due.sort_by(|a, b| a.0.cmp(&b.0));
            let limit = limit.max(1);
            let next = (due.len() > limit).then(|| due[limit - 1].0.clone());
            due.truncate(limit);
            Ok(Page {
                items: due.into_iter().map(|(_, d)| d).collect(),
                next,
            })
        })
    }

    fn put_catalog<'a>(&'a self, catalog: &'a CatalogData) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.inner.lock().catalog = catalog.clone();
            Ok(())
        })
    }

    fn catalog(&self) -> BoxFuture<'_, Result<CatalogData, StoreError>> {
        Box::pin(async move { Ok(self.inner.lock().catalog.clone()) })
    }

    fn invoice<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Invoice>, StoreError>> {
        Box::pin(async move { Ok(get_pair(&self.inner.lock().invoices, account_id, invoice_id)) })
    }

    fn invoices_since<'a>(
        &'a self,
        account_id: &'a str,
        subscription_id: &'a str,
        since: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Vec<Invoice>, StoreError>> {
        Box::pin(async move {
            let mut out: Vec<Invoice> = self
                .inner
                .lock()
                .invoices
                .range((account_id.to_string(), String::new())..)
                .take_while(|((account, _), _)| account == account_id)
                .map(|(_, i)| i)
                .filter(|i| i.subscription_id == subscription_id && i.period.start >= since)
                .cloned()
                .collect();
            out.sort_by_key(|i| i.period.start);
            Ok(out)
        })
    }

    fn credit_notes<'a>(
        &'a self,
        account_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<CreditNoteDoc>, StoreError>> {
        Box::pin(async move {
            Ok(self
                .inner
                .lock()
                .credit_notes
                .values()
                .filter(|c| c.account_id == account_id)
                .cloned()
                .collect())
        })
    }

    fn commit_close<'a>(&'a self, c: &'a CloseCommit) -> BoxFuture<'a, Result<CloseOutcome, StoreError>> {
        Box::pin(async move {
            let inv = &c.invoice;
            if inv.status != InvoiceStatus::Draft {
                return Err(StoreError::Corrupt("a close writes a draft".into()));
            }
            let mut inner = self.inner.lock();
            let sub_key = (inv.account_id.clone(), inv.subscription_id.clone());
            let inv_key = (inv.account_id.clone(), inv.invoice_id.clone());
            let sub_ok = inner
                .subscriptions
                .get(&sub_key)
                .is_some_and(|s| s.next_close_at == Some(c.expected_next_close));
            if !sub_ok || inner.invoices.contains_key(&inv_key) {
                return Ok(CloseOutcome::AlreadyClosed);
            }
            if c.credit_notes.iter().any(|n| {
                inner
                    .credit_notes
                    .contains_key(&(n.account_id.clone(), n.credit_note_id.clone()))
            }) {
                return Ok(CloseOutcome::AlreadyClosed);
            }
            let taken = inv.statements.statements.iter().any(|st| {
                inner.statements.contains_key(&(
                    st.provider_id.clone(),
                    inv.period.end,
                    inv.invoice_id.clone(),
                ))
            });
            if taken {
                return Err(StoreError::Collision(format!(
                    "a provider statement entry of invoice {} exists",
                    inv.invoice_id
                )));
            }
            let balance_ok = inner
                .accounts
                .get(&inv.account_id)
                .is_some_and(|a| a.credit_balance == c.expected_balance);
            if !balance_ok {
                return Err(StoreError::Conflict(format!(
                    "credit balance of {} changed",
                    inv.account_id
                )));
            }
            if let Some(s) = inner.subscriptions.get_mut(&sub_key) {
                s.next_close_at = c.next_close;
            }
            if let Some(a) = inner.accounts.get_mut(&inv.account_id) {
                a.credit_balance = c.new_balance;
            }
            for n in &c.credit_notes {
                inner
                    .credit_notes
                    .insert((n.account_id.clone(), n.credit_note_id.clone()), n.clone());
            }
            for st in &inv.statements.statements {
                inner.statements.insert(
                    (st.provider_id.clone(), inv.period.end, inv.invoice_id.clone()),
                    st.clone(),
                );
            }
            inner.pending.insert(inv_key.clone(), PendingInvoice::of(inv));
            inner.invoices.insert(inv_key, inv.clone());
            inner.commits += 1;
            Ok(CloseOutcome::Committed(Box::new(inv.clone())))
        })
    }

    fn commit_upfront<'a>(&'a self, inv: &'a Invoice) -> BoxFuture<'a, Result<UpfrontOutcome, StoreError>> {
        Box::pin(async move {
            if inv.status != InvoiceStatus::Draft {
                return Err(StoreError::Corrupt("an upfront is written as a draft".into()));
            }
            let mut inner = self.inner.lock();
            let inv_key = (inv.account_id.clone(), inv.invoice_id.clone());
            if inner.invoices.contains_key(&inv_key) {
                return Ok(UpfrontOutcome::AlreadyIssued);
            }
            for st in &inv.statements.statements {
                inner.statements.insert(
                    (st.provider_id.clone(), inv.period.end, inv.invoice_id.clone()),
                    st.clone(),
                );
            }
            inner.pending.insert(inv_key.clone(), PendingInvoice::of(inv));
            inner.invoices.insert(inv_key, inv.clone());
            inner.commits += 1;
            Ok(UpfrontOutcome::Committed(Box::new(inv.clone())))
        })
    }

    fn drop_upfront<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.inner
                .lock()
                .dropped_upfronts
                .insert((account_id.to_string(), invoice_id.to_string()));
            Ok(())
        })
    }

    #[allow(clippy::expect_used)] // Cannot fail: the invoice was found above under the same lock.
    fn number_drafts<'a>(&'a self, drafts: &'a [Invoice]) -> BoxFuture<'a, Result<Vec<Invoice>, StoreError>> {
        Box::pin(async move {
            let mut inner = self.inner.lock();
            let mut out = Vec::new();
            for (prefix, chunk) in numbering_batches(drafts) {
                let still: Vec<&Invoice> = chunk
                    .iter()
                    .copied()
                    .filter(|x| {
                        inner
                            .invoices
                            .get(&(x.account_id.clone(), x.invoice_id.clone()))
                            .is_some_and(|s| s.status == InvoiceStatus::Draft)
                    })
                    .collect();
                if still.is_empty() {
                    continue;
                }
                let mut seq = inner.counters.get(prefix).copied().unwrap_or(0);
                for x in still {
                    seq += 1;
                    let key = (x.account_id.clone(), x.invoice_id.clone());
                    let stored = inner.invoices.get(&key).expect("checked above").clone();
                    let finalized = stored
                        .finalize(seq)
                        .map_err(|e| StoreError::Corrupt(e.to_string()))?;
                    inner.invoices.insert(key, finalized.clone());
                    out.push(finalized);
                }
                inner.counters.insert(prefix.to_string(), seq);
                inner.numberings += 1;
            }
            Ok(out)
        })
    }

    fn pending_invoices<'a>(
        &'a self,
        shard: u32,
        until: DateTime<Utc>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<PendingInvoice>, StoreError>> {
        Box::pin(async move {
            let inner = self.inner.lock();
            let items: Vec<(String, PendingInvoice)> = inner
                .pending
                .values()
                .filter(|p| due_shard(&p.invoice_id, DUE_SHARDS) == shard && p.since <= until)
                .map(|p| (format!("{}#{}", p.account_id, p.invoice_id), p.clone()))
                .collect();
            Ok(page_after(items, after, limit))
        })
    }

    fn pending_invoice<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<PendingInvoice>, StoreError>> {
        Box::pin(async move { Ok(get_pair(&self.inner.lock().pending, account_id, invoice_id)) })
    }

    fn clear_pending<'a>(&'a self, done: &'a [PendingInvoice]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut inner = self.inner.lock();
            for p in done {
                inner
                    .pending
                    .remove(&(p.account_id.clone(), p.invoice_id.clone()));
            }
            Ok(())
        })
    }

    fn last_number<'a>(&'a self, issuer_prefix: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            Ok(self
                .inner
                .lock()
                .counters
                .get(issuer_prefix)
                .copied()
                .unwrap_or(0))
        })
    }

    fn open_invoices<'a>(
        &'a self,
        shard: u32,
        due_by: NaiveDate,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<OpenInvoice>, StoreError>> {
        Box::pin(async move {
            let inner = self.inner.lock();
            let mut open: Vec<(String, OpenInvoice)> = inner
                .invoices
                .values()
                .filter(|i| i.status.is_collectible() && i.outstanding > Decimal::ZERO)
                .filter(|i| due_shard(&i.invoice_id, DUE_SHARDS) == shard && i.due_date <= due_by)
                .map(|i| {
                    (
                        format!("{}#{}", i.due_date, i.invoice_id),
                        OpenInvoice {
                            account_id: i.account_id.clone(),
                            invoice_id: i.invoice_id.clone(),
                            due_date: i.due_date,
                        },
                    )
                })
                .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
                .collect();
            open.sort_by(|a, b| a.0.cmp(&b.0));
            let limit = limit.max(1);
            let next = (open.len() > limit).then(|| open[limit - 1].0.clone());
            open.truncate(limit);
            Ok(Page {
                items: open.into_iter().map(|(_, o)| o).collect(),
                next,
            })
        })
    }

    fn mark_past_due<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut inner = self.inner.lock();
            match inner
                .invoices
                .get_mut(&(account_id.to_string(), invoice_id.to_string()))
            {
                Some(i) if i.status == InvoiceStatus::Open => {
                    i.status = InvoiceStatus::PastDue;
                    Ok(true)
                }
                _ => Ok(false),
            }
        })
    }

    fn charge_late_fee<'a>(
        &'a self,
        account_id: &'a str,
        charge: &'a LateFeeCharge,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut inner = self.inner.lock();
            if inner.fees.contains_key(&charge.key) {
                return Ok(false);
            }
            let Some(i) = inner
                .invoices
                .get_mut(&(account_id.to_string(), charge.invoice_id.clone()))
            else {
                return Err(StoreError::Corrupt(format!("no invoice {}", charge.invoice_id)));
            };
            i.outstanding += charge.amount.amount;
            inner.fees.insert(charge.key.clone(), charge.clone());
            inner
                .unannounced
                .insert(charge.key.clone(), account_id.to_string());
            Ok(true)
        })
    }

    fn unannounced_fee<'a>(
        &'a self,
        _account_id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<LateFeeCharge>, StoreError>> {
        Box::pin(async move {
            let inner = self.inner.lock();
            Ok(inner
                .unannounced
                .contains_key(key)
                .then(|| inner.fees.get(key).cloned())
                .flatten())
        })
    }

    fn fee_announced<'a>(
        &'a self,
        _account_id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.inner.lock().unannounced.remove(key);
            Ok(())
        })
    }

    fn unannounced_fees(
        &self,
        shard: u32,
    ) -> BoxFuture<'_, Result<Vec<(String, LateFeeCharge)>, StoreError>> {
        Box::pin(async move {
            let inner = self.inner.lock();
            Ok(inner
                .unannounced
                .iter()
                .filter(|(_, account)| due_shard(account, DUE_SHARDS) == shard)
                .filter_map(|(key, account)| Some((account.clone(), inner.fees.get(key)?.clone())))
                .collect())
        })
    }

    fn record_payment<'a>(
        &'a self,
        result: &'a PaymentResult,
        succeeded: bool,
    ) -> BoxFuture<'a, Result<PaymentOutcome, StoreError>> {
        Box::pin(async move {
            let mut inner = self.inner.lock();
            if inner.payments.contains_key(&result.event_id) {
                return Ok(PaymentOutcome::Duplicate);
            }
            let key = (result.account_id.clone(), result.invoice_id.clone());
            let Some(inv) = inner.invoices.get_mut(&key) else {
                return Ok(PaymentOutcome::Rejected(PaymentMismatch::UnknownInvoice {
                    account_id: result.account_id.clone(),
                    invoice_id: result.invoice_id.clone(),
                }));
            };
            if let Err(m) = check_payment(result, inv, succeeded) {
                return Ok(PaymentOutcome::Rejected(m));
            }
            let outcome = match (
                succeeded,
                apply_payment(inv.status, inv.outstanding, result.amount),
            ) {
                (true, Some((status, outstanding))) => {
                    inv.status = status;
                    inv.outstanding = outstanding;
                    PaymentOutcome::Applied { status, outstanding }
                }
                _ => PaymentOutcome::Recorded { status: inv.status },
            };
            inner.payments.insert(result.event_id.clone(), result.clone());
            if succeeded {
                inner.succeeded.insert(result.event_id.clone());
            }
            Ok(outcome)
        })
    }
}

/// The first `limit` of `items` (sorted by key) after `after`, with the key of the last one
/// when the page is full (as the DynamoDB adapter pages: a last page may be empty).
fn page_after<T>(mut items: Vec<(String, T)>, after: Option<&str>, limit: usize) -> Page<T> {
    items.sort_by(|a, b| a.0.cmp(&b.0));
    let limit = limit.max(1);
    let mut kept: Vec<(String, T)> = items
        .into_iter()
        .filter(|(k, _)| after.is_none_or(|a| k.as_str() > a))
        .take(limit)
        .collect();
    let next = (kept.len() == limit).then(|| kept[limit - 1].0.clone());
    Page {
        items: kept.drain(..).map(|(_, v)| v).collect(),
        next,
    }
}

impl Inner {
    /// A subscription's entries in the due index, keyed as the index orders them: its next
    /// close, and each upfront purchase neither invoiced nor dropped, at its term start.
    fn due_entries(&self, s: &BillingSubscription) -> Vec<(String, DueSubscription)> {
        let entry = |at: DateTime<Utc>, tail: &str| {
            (
                format!(
                    "{}#{}{tail}",
                    crate::domain::usage::window_key(at),
                    s.subscription_id
                ),
                DueSubscription {
                    account_id: s.account_id.clone(),
                    subscription_id: s.subscription_id.clone(),
                    next_close_at: at,
                },
            )
        };
        let mut out: Vec<_> = s.next_close_at.map(|at| entry(at, "")).into_iter().collect();
        for (_, r) in upfront_purchases(s) {
            let key = (
                s.account_id.clone(),
                upfront_invoice_id(&s.account_id, &s.subscription_id, r),
            );
            if !self.invoices.contains_key(&key) && !self.dropped_upfronts.contains(&key) {
                out.push(entry(r.term_start, &format!("#{}", key.1)));
            }
        }
        out
    }

    fn statement_entry(
        &self,
        key: &(String, DateTime<Utc>, String),
        st: &ProviderStatement,
    ) -> StatementEntry {
        let account_id = self
            .invoices
            .values()
            .find(|i| i.invoice_id == key.2)
            .map(|i| i.account_id.clone())
            .unwrap_or_default();
        StatementEntry {
            invoice_id: key.2.clone(),
            account_id,
            period_end: key.1,
            statement: st.clone(),
            voided: self.voided.contains(key),
        }
    }

    /// Whether the stored invoice is still as `inv` was read (status, outstanding, manual credit).
    fn as_read(&self, inv: &Invoice, credited: Option<Decimal>) -> bool {
        let key = (inv.account_id.clone(), inv.invoice_id.clone());
        self.invoices
            .get(&key)
            .is_some_and(|i| i.status == inv.status && i.outstanding == inv.outstanding)
            && self.credited.get(&key).copied() == credited
    }
}

impl IssuedInvoices for MemoryBillingStore {
    fn list_invoices<'a>(
        &'a self,
        account_id: &'a str,
        filter: &'a InvoiceFilter,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<Invoice>, StoreError>> {
        Box::pin(async move {
            let inner = self.inner.lock();
            let items = inner
                .invoices
                .values()
                .filter(|i| i.account_id == account_id && filter.matches(i))
                .map(|i| (format!("INV#{}", i.invoice_id), i.clone()))
                .collect();
            Ok(page_after(items, after, limit))
        })
    }

    fn list_all_invoices<'a>(
        &'a self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        filter: &'a InvoiceFilter,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<Invoice>, StoreError>> {
        Box::pin(async move {
            if let Some(a) = after {
                a.split_once('|')
                    .ok_or_else(|| StoreError::Corrupt(format!("bad invoice cursor {a:?}")))?;
            }
            let inner = self.inner.lock();
            let items = inner
                .invoices
                .values()
                .filter(|i| i.issued_at >= from && i.issued_at < to && filter.matches(i))
                .map(|i| {
                    (
                        format!("{}|INV#{}", cursor_instant(i.issued_at), i.invoice_id),
                        i.clone(),
                    )
                })
                .collect();
            Ok(page_after(items, after, limit))
        })
    }

    fn invoices_issued(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Vec<Invoice>, StoreError>> {
        Box::pin(async move {
            let mut out: Vec<Invoice> = self
                .inner
                .lock()
                .invoices
                .values()
                .filter(|i| i.issued_at >= from && i.issued_at < to)
                .cloned()
                .collect();
            out.sort_by(|a, b| (a.issued_at, &a.invoice_id).cmp(&(b.issued_at, &b.invoice_id)));
            Ok(out)
        })
    }

    fn list_credit_notes<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: Option<&'a str>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<CreditNoteDoc>, StoreError>> {
        Box::pin(async move {
            let inner = self.inner.lock();
            let items = inner
                .credit_notes
                .values()
                .filter(|n| n.account_id == account_id)
                .filter(|n| invoice_id.is_none_or(|id| n.original_invoice_id == id))
                .map(|n| (format!("CN#{}", n.credit_note_id), n.clone()))
                .collect();
            Ok(page_after(items, after, limit))
        })
    }

    fn credit_note<'a>(
        &'a self,
        account_id: &'a str,
        credit_note_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<CreditNoteDoc>, StoreError>> {
        Box::pin(async move {
            Ok(get_pair(
                &self.inner.lock().credit_notes,
                account_id,
                credit_note_id,
            ))
        })
    }

    fn credited<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<Decimal, StoreError>> {
        Box::pin(async move {
            Ok(self
                .inner
                .lock()
                .credit_notes
                .values()
                .filter(|n| n.account_id == account_id && n.original_invoice_id == invoice_id)
                .map(|n| n.amount)
                .sum())
        })
    }

    fn payments_applied<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let inner = self.inner.lock();
            Ok(inner.payments.values().any(|p| {
                p.account_id == account_id
                    && p.invoice_id == invoice_id
                    && p.amount > Decimal::ZERO
                    && inner.succeeded.contains(&p.event_id)
            }))
        })
    }

    fn payment_recorded<'a>(
        &'a self,
        account_id: &'a str,
        event_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            Ok(self
                .inner
                .lock()
                .payments
                .get(event_id)
                .is_some_and(|p| p.account_id == account_id))
        })
    }

    fn invoice_for_credit<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<CreditBasis>, StoreError>> {
        Box::pin(async move {
            let inner = self.inner.lock();
            let key = (account_id.to_string(), invoice_id.to_string());
            Ok(inner
                .invoices
                .get(&key)
                .map(|i| (i.clone(), inner.credited.get(&key).copied())))
        })
    }

    fn void_invoice<'a>(&'a self, inv: &'a Invoice) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut inner = self.inner.lock();
            let entries: Vec<(String, DateTime<Utc>, String)> = inv
                .statements
                .statements
                .iter()
                .map(|st| (st.provider_id.clone(), inv.period.end, inv.invoice_id.clone()))
                .collect();
            let ok = inner.as_read(inv, None)
                && (inv.credit_applied <= Decimal::ZERO || inner.accounts.contains_key(&inv.account_id))
                && entries.iter().all(|k| inner.statements.contains_key(k));
            if !ok {
                return Ok(false);
            }
            let key = (inv.account_id.clone(), inv.invoice_id.clone());
            if let Some(i) = inner.invoices.get_mut(&key) {
                i.status = InvoiceStatus::Void;
                i.outstanding = Decimal::ZERO;
            }
            if inv.credit_applied > Decimal::ZERO {
                if let Some(a) = inner.accounts.get_mut(&inv.account_id) {
                    a.credit_balance.amount += inv.credit_applied;
                }
            }
            inner.voided.extend(entries);
            Ok(true)
        })
    }

    fn issue_credit_note<'a>(
        &'a self,
        inv: &'a Invoice,
        credited: Option<Decimal>,
        effect: &'a CreditEffect,
    ) -> BoxFuture<'a, Result<CreditNoteOutcome, StoreError>> {
        Box::pin(async move {
            let mut inner = self.inner.lock();
            let note = &effect.note;
            let note_key = (note.account_id.clone(), note.credit_note_id.clone());
            if let Some(existing) = inner.credit_notes.get(&note_key) {
                return Ok(CreditNoteOutcome::Exists(Box::new(existing.clone())));
            }
            let balance_ok =
                effect.to_balance <= Decimal::ZERO || inner.accounts.contains_key(&inv.account_id);
            if !inner.as_read(inv, credited) || !balance_ok {
                return Ok(CreditNoteOutcome::Conflict);
            }
            let key = (inv.account_id.clone(), inv.invoice_id.clone());
            if let Some(i) = inner.invoices.get_mut(&key) {
                i.status = effect.status;
                i.outstanding = effect.outstanding;
            }
            *inner.credited.entry(key).or_default() += note.amount;
            inner.to_balance.insert(note_key.clone(), effect.to_balance);
            if effect.to_balance > Decimal::ZERO {
                if let Some(a) = inner.accounts.get_mut(&inv.account_id) {
                    a.credit_balance.amount += effect.to_balance;
                }
            }
            inner.credit_notes.insert(note_key, note.clone());
            Ok(CreditNoteOutcome::Created)
        })
    }

    fn list_statements<'a>(
        &'a self,
        provider_id: &'a str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<StatementEntry>, StoreError>> {
        Box::pin(async move {
            let inner = self.inner.lock();
            let items = inner
                .statements
                .iter()
                .filter(|(k, _)| k.0 == provider_id && k.1 >= from && k.1 < to)
                .map(|(k, st)| {
                    (
                        format!("STMT#{}#{}", cursor_instant(k.1), k.2),
                        inner.statement_entry(k, st),
                    )
                })
                .collect();
            Ok(page_after(items, after, limit))
        })
    }

    fn statement_entry_of<'a>(
        &'a self,
        provider_id: &'a str,
        period_end: DateTime<Utc>,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StatementEntry>, StoreError>> {
        Box::pin(async move {
            let inner = self.inner.lock();
            let key = (provider_id.to_string(), period_end, invoice_id.to_string());
            Ok(inner
                .statements
                .get(&key)
                .map(|st| inner.statement_entry(&key, st)))
        })
    }
}

/// An [`EventPublisher`] that keeps what it was given.
#[derive(Default)]
pub struct MemoryEventPublisher {
    events: Mutex<Vec<BillingEvent>>,
}

impl MemoryEventPublisher {
    pub fn new() -> Self {
        Self::default()
    }

    /// Everything published, in order (duplicates included).
    pub fn events(&self) -> Vec<BillingEvent> {
        self.events.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

impl EventPublisher for MemoryEventPublisher {
    fn publish<'a>(&'a self, events: &'a [BillingEvent]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.events
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .extend_from_slice(events);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::billing::ledger::{check_void, manual_credit_note, ManualCredit};
    use crate::domain::billing::{sample, BillingPeriod, InvoiceNumbering, StatementRun};
    use crate::domain::money::{Currency, Money};
    use chrono::{Duration, TimeZone};

    fn d(s: &str) -> Decimal {
        s.parse().unwrap()
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    /// An issued invoice of `acct_a` for day `day`, `total` (no tax), with one provider statement.
    fn invoice(day: i64, status: InvoiceStatus, total: &str, credit_applied: &str) -> Invoice {
        let start = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap() + Duration::days(day);
        let usd = |a: &str| Money::new(d(a), Currency::USD);
        let total = d(total);
        let credit = d(credit_applied);
        Invoice {
            invoice_id: format!("inv_{day:02}"),
            account_id: "acct_a".into(),
            subscription_id: "sub_a".into(),
            kind: Default::default(),
            period: BillingPeriod {
                start,
                end: start + Duration::days(1),
            },
            status,
            number: Some(format!("ML-{day:06}")),
            issuer: InvoiceNumbering::new("ML").unwrap(),
            currency: Currency::USD,
            lines: vec![],
            net_total: total,
            tax_total: Decimal::ZERO,
            total,
            credit_applied: credit,
            amount_due: total - credit,
            outstanding: total - credit,
            conversion: None,
            issued_at: start + Duration::days(1),
            due_date: start.date_naive(),
            auto_pay: false,
            statements: StatementRun {
                currency: Currency::USD,
                statements: vec![ProviderStatement {
                    provider_id: "prov_1".into(),
                    usage_billed: usd("1.00"),
                    tax: usd("0.00"),
                    fee_percent: d("10"),
                    marketplace_fee: usd("0.10"),
                    payout: usd("0.90"),
                    discount_share: None,
                    term_schedule: Vec::new(),
                }],
                total_billed: usd("1.00"),
                total_tax: usd("0.00"),
                total_fees: usd("0.10"),
                total_payouts: usd("0.90"),
            },
        }
    }

    fn store_with(invoices: &[Invoice]) -> MemoryBillingStore {
        let store = MemoryBillingStore::new();
        run(store.put_account(&sample::account("acct_a", Currency::USD))).unwrap();
        let mut inner = store.inner.lock();
        for inv in invoices {
            for st in &inv.statements.statements {
                inner.statements.insert(
                    (st.provider_id.clone(), inv.period.end, inv.invoice_id.clone()),
                    st.clone(),
                );
            }
            inner
                .invoices
                .insert((inv.account_id.clone(), inv.invoice_id.clone()), inv.clone());
        }
        drop(inner);
        store
    }

    fn balance(store: &MemoryBillingStore) -> Decimal {
        run(store.account("acct_a"))
            .unwrap()
            .unwrap()
            .credit_balance
            .amount
    }

    /// The API's void: read, decide (`check_void`), write as read.
    fn void(store: &MemoryBillingStore, id: &str) -> Result<bool, String> {
        let inv = run(store.invoice("acct_a", id)).unwrap().unwrap();
        let paid = run(store.payments_applied("acct_a", id)).unwrap();
        let credited = run(store.credited("acct_a", id)).unwrap();
        check_void(&inv, paid, credited > Decimal::ZERO).map_err(|e| e.to_string())?;
        Ok(run(store.void_invoice(&inv)).unwrap())
    }

    #[test]
    fn void_only_from_allowed_states_returns_credit_and_marks_statements() {
        let store = store_with(&[
            invoice(0, InvoiceStatus::Open, "10.00", "3.00"),
            invoice(1, InvoiceStatus::Paid, "10.00", "0.00"),
            invoice(2, InvoiceStatus::Draft, "10.00", "0.00"),
            invoice(3, InvoiceStatus::PastDue, "10.00", "0.00"),
        ]);
        let before = balance(&store);
        assert_eq!(void(&store, "inv_00"), Ok(true));
        assert_eq!(balance(&store), before + d("3.00"));
        let v = run(store.invoice("acct_a", "inv_00")).unwrap().unwrap();
        assert_eq!((v.status, v.outstanding), (InvoiceStatus::Void, Decimal::ZERO));
        let end = v.period.end;
        assert!(
            run(store.statement_entry_of("prov_1", end, "inv_00"))
                .unwrap()
                .unwrap()
                .voided
        );
        // Void, paid and draft invoices cannot be voided; past due can.
        assert!(void(&store, "inv_00").is_err());
        assert!(void(&store, "inv_01").is_err());
        assert!(void(&store, "inv_02").is_err());
        assert_eq!(balance(&store), before + d("3.00"));
        assert_eq!(void(&store, "inv_03"), Ok(true));
        // A write on an invoice that changed since it was read fails.
        let stale = invoice(3, InvoiceStatus::PastDue, "10.00", "0.00");
        assert!(!run(store.void_invoice(&stale)).unwrap());
    }

    #[test]
    fn a_payment_or_a_credit_note_blocks_the_void() {
        let store = store_with(&[
            invoice(0, InvoiceStatus::Open, "10.00", "0.00"),
            invoice(1, InvoiceStatus::Open, "10.00", "0.00"),
        ]);
        let pay = PaymentResult {
            event_id: "manual#w1".into(),
            invoice_id: "inv_00".into(),
            top_up_id: None,
            account_id: "acct_a".into(),
            currency: "USD".into(),
            amount: d("1.00"),
            at: Utc::now(),
            reason: None,
        };
        run(store.record_payment(&pay, true)).unwrap();
        assert!(run(store.payment_recorded("acct_a", "manual#w1")).unwrap());
        assert!(!run(store.payment_recorded("acct_b", "manual#w1")).unwrap());
        assert!(void(&store, "inv_00").unwrap_err().contains("payment"));
        credit(&store, "inv_01", "cn1", "1.00").unwrap();
        assert!(void(&store, "inv_01").unwrap_err().contains("credit"));
    }

    /// The API's credit note: read with `credited`, decide, write as read.
    fn credit(
        store: &MemoryBillingStore,
        id: &str,
        key: &str,
        amount: &str,
    ) -> Result<CreditNoteOutcome, String> {
        let (inv, manual) = run(store.invoice_for_credit("acct_a", id)).unwrap().unwrap();
        let credited = run(store.credited("acct_a", id)).unwrap();
        let credit = ManualCredit {
            amount: d(amount),
            reason: None,
            memo: None,
        };
        let effect =
            manual_credit_note(&inv, credited, key, &credit, Utc::now()).map_err(|e| e.to_string())?;
        Ok(run(store.issue_credit_note(&inv, manual, &effect)).unwrap())
    }

    #[test]
    fn credit_notes_stay_within_the_total_and_pay_then_credit_the_balance() {
        let store = store_with(&[invoice(0, InvoiceStatus::Open, "10.00", "0.00")]);
        assert_eq!(
            credit(&store, "inv_00", "cn1", "4.00"),
            Ok(CreditNoteOutcome::Created)
        );
        // The same id again: nothing written.
        assert!(matches!(
            credit(&store, "inv_00", "cn1", "4.00"),
            Ok(CreditNoteOutcome::Exists(_))
        ));
        assert_eq!(run(store.credited("acct_a", "inv_00")).unwrap(), d("4.00"));
        // More than the total less earlier notes is refused.
        assert!(credit(&store, "inv_00", "cn2", "6.01").is_err());
        let before = balance(&store);
        // 6.00 left outstanding: a 6.00 note pays the invoice; nothing more can be credited.
        assert_eq!(
            credit(&store, "inv_00", "cn2", "6.00"),
            Ok(CreditNoteOutcome::Created)
        );
        let inv = run(store.invoice("acct_a", "inv_00")).unwrap().unwrap();
        assert_eq!(
            (inv.status, inv.outstanding),
            (InvoiceStatus::Paid, Decimal::ZERO)
        );
        assert_eq!(balance(&store), before);
        assert!(credit(&store, "inv_00", "cn3", "0.01").is_err());
        // A note decided on a stale read (another note since) is a conflict, not an over-credit.
        let store = store_with(&[invoice(1, InvoiceStatus::Paid, "10.00", "0.00")]);
        let (inv, manual) = run(store.invoice_for_credit("acct_a", "inv_01"))
            .unwrap()
            .unwrap();
        let c = ManualCredit {
            amount: d("10.00"),
            reason: None,
            memo: None,
        };
        let effect = manual_credit_note(&inv, Decimal::ZERO, "late", &c, Utc::now()).unwrap();
        assert_eq!(
            credit(&store, "inv_01", "first", "10.00"),
            Ok(CreditNoteOutcome::Created)
        );
        assert_eq!(
            run(store.issue_credit_note(&inv, manual, &effect)).unwrap(),
            CreditNoteOutcome::Conflict
        );
        // On a paid invoice all of the note went to the balance, once.
        assert_eq!(balance(&store), d("10.00") + sample_balance());
        let page = run(store.list_credit_notes("acct_a", Some("inv_01"), None, 10)).unwrap();
        assert_eq!(page.items.len(), 1);
        assert_eq!(
            run(store.credit_note("acct_a", "first"))
                .unwrap()
                .map(|n| n.amount),
            Some(d("10.00"))
        );
        assert_eq!(run(store.credit_note("acct_b", "first")).unwrap(), None);
    }

    fn sample_balance() -> Decimal {
        sample::account("acct_a", Currency::USD).credit_balance.amount
    }

    #[test]
    fn filtered_pages_return_every_match_once_in_order() {
        let all: Vec<Invoice> = (0..12)
            .map(|day| {
                let status = if day % 3 == 0 {
                    InvoiceStatus::Paid
                } else {
                    InvoiceStatus::Open
                };
                invoice(day, status, &format!("{}.00", 10 + day), "0.00")
            })
            .collect();
        let store = store_with(&all);
        let filter = InvoiceFilter {
            statuses: vec![InvoiceStatus::Open],
            min_total: Some(d("12.00")),
            ..Default::default()
        };
        let expected: Vec<String> = all
            .iter()
            .filter(|i| filter.matches(i))
            .map(|i| i.invoice_id.clone())
            .collect();
        assert_eq!(expected.len(), 7);
        for limit in [1, 2, 3, 7, 100] {
            let (mut got, mut after, mut pages) = (Vec::new(), None::<String>, 0);
            loop {
                let page = run(store.list_invoices("acct_a", &filter, after.as_deref(), limit)).unwrap();
                assert!(page.items.len() <= limit);
                got.extend(page.items.into_iter().map(|i| i.invoice_id));
                pages += 1;
                match page.next {
                    Some(n) => after = Some(n),
                    None => break,
                }
                assert!(pages < 20);
            }
            assert_eq!(got, expected, "limit {limit}");
        }
        // Every account's, by issue time, in a range.
        let from = all[2].issued_at;
        let to = all[9].issued_at;
        let (mut got, mut after) = (Vec::new(), None::<String>);
        loop {
            let page = run(store.list_all_invoices(from, to, &filter, after.as_deref(), 2)).unwrap();
            got.extend(page.items.into_iter().map(|i| i.invoice_id));
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        let in_range: Vec<String> = all[2..9]
            .iter()
            .filter(|i| filter.matches(i))
            .map(|i| i.invoice_id.clone())
            .collect();
        assert_eq!(got, in_range);
        assert_eq!(run(store.invoices_issued(from, to)).unwrap().len(), 7);
        // Statements: the provider's entries by period end, paged.
        let page = run(store.list_statements("prov_1", from, to, None, 3)).unwrap();
        assert_eq!(page.items.len(), 3);
        assert!(page.next.as_deref().is_some_and(|n| n.starts_with("STMT#")));
        assert!(page.items.windows(2).all(|w| w[0].period_end < w[1].period_end));
        assert_eq!(page.items[0].account_id, "acct_a");
    }
}
