//! In-memory billing adapters with the DynamoDB adapter's semantics (conditional writes, one
//! lock per commit), for domain tests, property tests and benchmarks.

use super::billing::{
    apply_payment, due_shard, BillingStore, CatalogData, CloseCommit, CloseOutcome, DueSubscription,
    EventPublisher, OpenInvoice, PaymentOutcome, DUE_SHARDS,
};
use super::{Page, StoreError};
use crate::billing::events::BillingEvent;
use crate::billing::events::PaymentResult;
use crate::billing::statement::ProviderStatement;
use crate::billing::{Account, BillingSubscription, CreditNoteDoc, Invoice};
use crate::billing::{InvoiceStatus, LateFeeCharge};
use chrono::NaiveDate;
use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use std::collections::{BTreeMap, HashMap};
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
    /// Payment results applied, by event id.
    payments: BTreeMap<String, PaymentResult>,
    commits: usize,
}

/// A [`BillingStore`] in memory.
#[derive(Default)]
pub struct MemoryBillingStore {
    inner: Mutex<Inner>,
}

impl MemoryBillingStore {
    pub fn new() -> Self {
        Self::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every invoice, by account and id.
    pub fn invoices(&self) -> Vec<Invoice> {
        self.lock().invoices.values().cloned().collect()
    }

    /// Every credit note.
    pub fn all_credit_notes(&self) -> Vec<CreditNoteDoc> {
        self.lock().credit_notes.values().cloned().collect()
    }

    /// Provider statement entries: (provider, period end, invoice id, statement).
    pub fn statements(&self) -> Vec<(String, DateTime<Utc>, String, ProviderStatement)> {
        self.lock()
            .statements
            .iter()
            .map(|((p, t, i), s)| (p.clone(), *t, i.clone(), s.clone()))
            .collect()
    }

    /// Late fees charged.
    pub fn fees(&self) -> Vec<LateFeeCharge> {
        self.lock().fees.values().cloned().collect()
    }

    /// Committed closes.
    pub fn commits(&self) -> usize {
        self.lock().commits
    }
}

impl BillingStore for MemoryBillingStore {
    async fn put_account(&self, account: &Account) -> Result<(), StoreError> {
        self.lock()
            .accounts
            .insert(account.account_id.clone(), account.clone());
        Ok(())
    }

    async fn account(&self, account_id: &str) -> Result<Option<Account>, StoreError> {
        Ok(self.lock().accounts.get(account_id).cloned())
    }

    async fn put_subscription(&self, s: &BillingSubscription) -> Result<(), StoreError> {
        self.lock()
            .subscriptions
            .insert((s.account_id.clone(), s.subscription_id.clone()), s.clone());
        Ok(())
    }

    async fn subscription(
        &self,
        account_id: &str,
        subscription_id: &str,
    ) -> Result<Option<BillingSubscription>, StoreError> {
        Ok(self
            .lock()
            .subscriptions
            .get(&(account_id.to_string(), subscription_id.to_string()))
            .cloned())
    }

    async fn account_subscriptions(&self, account_id: &str) -> Result<Vec<BillingSubscription>, StoreError> {
        Ok(self
            .lock()
            .subscriptions
            .values()
            .filter(|s| s.account_id == account_id)
            .cloned()
            .collect())
    }

    async fn due_subscriptions(
        &self,
        shard: u32,
        until: DateTime<Utc>,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<DueSubscription>, StoreError> {
        let inner = self.lock();
        let mut due: Vec<(String, DueSubscription)> = inner
            .subscriptions
            .values()
            .filter(|s| due_shard(&s.subscription_id, DUE_SHARDS) == shard)
            .filter_map(|s| {
                let at = s.next_close_at.filter(|t| *t <= until)?;
                Some((
                    format!("{}#{}", crate::usage::window_key(at), s.subscription_id),
                    DueSubscription {
                        account_id: s.account_id.clone(),
                        subscription_id: s.subscription_id.clone(),
                        next_close_at: at,
                    },
                ))
            })
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
    }

    async fn put_catalog(&self, catalog: &CatalogData) -> Result<(), StoreError> {
        self.lock().catalog = catalog.clone();
        Ok(())
    }

    async fn catalog(&self) -> Result<CatalogData, StoreError> {
        Ok(self.lock().catalog.clone())
    }

    async fn invoice(&self, account_id: &str, invoice_id: &str) -> Result<Option<Invoice>, StoreError> {
        Ok(self
            .lock()
            .invoices
            .get(&(account_id.to_string(), invoice_id.to_string()))
            .cloned())
    }

    async fn invoices_since(
        &self,
        account_id: &str,
        subscription_id: &str,
        since: DateTime<Utc>,
    ) -> Result<Vec<Invoice>, StoreError> {
        let mut out: Vec<Invoice> = self
            .lock()
            .invoices
            .values()
            .filter(|i| i.account_id == account_id && i.subscription_id == subscription_id)
            .filter(|i| i.period.start >= since)
            .cloned()
            .collect();
        out.sort_by_key(|i| i.period.start);
        Ok(out)
    }

    async fn credit_notes(&self, account_id: &str) -> Result<Vec<CreditNoteDoc>, StoreError> {
        Ok(self
            .lock()
            .credit_notes
            .values()
            .filter(|c| c.account_id == account_id)
            .cloned()
            .collect())
    }

    async fn commit_close(&self, c: &CloseCommit) -> Result<CloseOutcome, StoreError> {
        let mut inner = self.lock();
        let inv = &c.invoice;
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
        let prefix = inv.issuer.prefix().to_string();
        let seq = inner.counters.get(&prefix).copied().unwrap_or(0) + 1;
        let finalized = inv
            .clone()
            .finalize(seq)
            .map_err(|e| StoreError::Corrupt(e.to_string()))?;
        inner.counters.insert(prefix, seq);
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
        for st in &finalized.statements.statements {
            inner.statements.insert(
                (st.provider_id.clone(), inv.period.end, inv.invoice_id.clone()),
                st.clone(),
            );
        }
        inner.invoices.insert(inv_key, finalized.clone());
        inner.commits += 1;
        Ok(CloseOutcome::Committed(Box::new(finalized)))
    }

    async fn last_number(&self, issuer_prefix: &str) -> Result<u64, StoreError> {
        Ok(self.lock().counters.get(issuer_prefix).copied().unwrap_or(0))
    }

    async fn open_invoices(
        &self,
        shard: u32,
        due_by: NaiveDate,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<OpenInvoice>, StoreError> {
        let inner = self.lock();
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
    }

    async fn mark_past_due(&self, account_id: &str, invoice_id: &str) -> Result<bool, StoreError> {
        let mut inner = self.lock();
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
    }

    async fn charge_late_fee(&self, account_id: &str, charge: &LateFeeCharge) -> Result<bool, StoreError> {
        let mut inner = self.lock();
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
        Ok(true)
    }

    async fn record_payment(
        &self,
        result: &PaymentResult,
        succeeded: bool,
    ) -> Result<PaymentOutcome, StoreError> {
        let mut inner = self.lock();
        if inner.payments.contains_key(&result.event_id) {
            return Ok(PaymentOutcome::Duplicate);
        }
        let key = (result.account_id.clone(), result.invoice_id.clone());
        let Some(inv) = inner.invoices.get_mut(&key) else {
            return Ok(PaymentOutcome::UnknownInvoice);
        };
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
        Ok(outcome)
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
    async fn publish(&self, events: &[BillingEvent]) -> Result<(), StoreError> {
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .extend_from_slice(events);
        Ok(())
    }
}
