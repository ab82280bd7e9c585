//! The billing ports: where accounts, subscriptions, price books, invoices, credit notes,
//! provider statements and the invoice counters live ([`BillingStore`]), and where billing
//! events go ([`EventPublisher`]).

use super::{Page, StoreError};
use crate::billing::events::{BillingEvent, PaymentResult};
use crate::billing::{Account, BillingSubscription, CreditNoteDoc, Invoice, InvoiceStatus, LateFeeCharge};
use crate::money::Money;
use crate::pricing::{PriceBook, TaxTable};
use chrono::{DateTime, NaiveDate, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;

/// Price books, tax rates and marketplace fees: what rating and statements read.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CatalogData {
    pub books: Vec<PriceBook>,
    #[serde(default)]
    pub taxes: TaxTable,
    /// Marketplace fee per provider, in percent.
    #[serde(default)]
    pub fees: BTreeMap<String, Decimal>,
}

/// A subscription whose period has ended, from the due index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DueSubscription {
    pub account_id: String,
    pub subscription_id: String,
    pub next_close_at: DateTime<Utc>,
}

/// Everything one close writes, atomically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseCommit {
    /// The draft, written as a draft (no number yet) with its pending marker; numbering
    /// ([`BillingStore::number_drafts`]) finalizes it.
    pub invoice: Invoice,
    pub credit_notes: Vec<CreditNoteDoc>,
    /// The subscription's `next_close_at` the close was computed from (the write's condition).
    pub expected_next_close: DateTime<Utc>,
    /// Its new value (`None`: the subscription has ended).
    pub next_close: Option<DateTime<Utc>>,
    /// The account balance the close was computed from (the write's condition) and after.
    pub expected_balance: Money,
    pub new_balance: Money,
}

/// The outcome of [`BillingStore::commit_close`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CloseOutcome {
    /// Written: the invoice as a draft, with its pending marker.
    Committed(Box<Invoice>),
    /// The period was closed already (another worker, a retry, a duplicate message): nothing
    /// was written.
    AlreadyClosed,
}

/// Where billing state lives. Every write that matters is conditional, so that retries and
/// races produce one invoice with one number.
pub trait BillingStore: Send + Sync {
    fn put_account(&self, account: &Account) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn account(&self, account_id: &str) -> impl Future<Output = Result<Option<Account>, StoreError>> + Send;

    /// Creates or replaces a subscription, indexing it by `next_close_at` when it has one.
    fn put_subscription(
        &self,
        subscription: &BillingSubscription,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn subscription(
        &self,
        account_id: &str,
        subscription_id: &str,
    ) -> impl Future<Output = Result<Option<BillingSubscription>, StoreError>> + Send;

    /// Every subscription of an account, by id.
    fn account_subscriptions(
        &self,
        account_id: &str,
    ) -> impl Future<Output = Result<Vec<BillingSubscription>, StoreError>> + Send;

    /// Subscriptions of index shard `shard` whose `next_close_at <= until`, oldest first.
    fn due_subscriptions(
        &self,
        shard: u32,
        until: DateTime<Utc>,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<DueSubscription>, StoreError>> + Send;

    fn put_catalog(&self, catalog: &CatalogData) -> impl Future<Output = Result<(), StoreError>> + Send;
    fn catalog(&self) -> impl Future<Output = Result<CatalogData, StoreError>> + Send;

    fn invoice(
        &self,
        account_id: &str,
        invoice_id: &str,
    ) -> impl Future<Output = Result<Option<Invoice>, StoreError>> + Send;

    /// Invoices of a subscription whose period starts at or after `since`, oldest first.
    fn invoices_since(
        &self,
        account_id: &str,
        subscription_id: &str,
        since: DateTime<Utc>,
    ) -> impl Future<Output = Result<Vec<Invoice>, StoreError>> + Send;

    /// Every credit note of an account.
    fn credit_notes(
        &self,
        account_id: &str,
    ) -> impl Future<Output = Result<Vec<CreditNoteDoc>, StoreError>> + Send;

    /// Writes a close exactly once: the invoice as a draft (if it does not exist) with a
    /// pending marker, its credit notes, its provider statement entries, the account's new
    /// balance and the subscription's next close, all or nothing. It takes no invoice number, so
    /// closes of one issuer do not contend. A concurrent change of the balance is
    /// [`StoreError::Conflict`]: recompute and try again.
    fn commit_close(
        &self,
        commit: &CloseCommit,
    ) -> impl Future<Output = Result<CloseOutcome, StoreError>> + Send;

    /// Numbers and finalizes the drafts given that are still drafts, in the order given, with
    /// the next numbers of their issuers: per issuer, one conditional write per
    /// [`NUMBERING_BATCH`] drafts moves the counter from `n` to `n + k` and opens the `k` drafts
    /// (each on condition it is still a draft), so a number is taken only with the invoice it
    /// goes to. Returns the invoices this call finalized; drafts another call numbered first are
    /// left out. Their pending markers stay (see [`BillingStore::clear_pending`]).
    fn number_drafts(
        &self,
        drafts: &[Invoice],
    ) -> impl Future<Output = Result<Vec<Invoice>, StoreError>> + Send;

    /// Pending markers of shard `shard` (of [`DUE_SHARDS`]) written at or before `until`: closes
    /// whose invoice may still need numbering or whose events may not have been published.
    fn pending_invoices(
        &self,
        shard: u32,
        until: DateTime<Utc>,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<PendingInvoice>, StoreError>> + Send;

    /// The pending marker of one invoice, if it still has one.
    fn pending_invoice(
        &self,
        account_id: &str,
        invoice_id: &str,
    ) -> impl Future<Output = Result<Option<PendingInvoice>, StoreError>> + Send;

    /// Removes pending markers: their invoices are numbered and their events published.
    fn clear_pending(&self, done: &[PendingInvoice]) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// The last number issued by an issuer (0 when none).
    fn last_number(&self, issuer_prefix: &str) -> impl Future<Output = Result<u64, StoreError>> + Send;

    /// Invoices with something outstanding (open or past due) of open-index shard `shard`,
    /// due on or before `due_by`.
    fn open_invoices(
        &self,
        shard: u32,
        due_by: NaiveDate,
        after: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<Page<OpenInvoice>, StoreError>> + Send;

    /// Moves an `open` invoice to `past_due`; `false` if it was not `open` any more.
    fn mark_past_due(
        &self,
        account_id: &str,
        invoice_id: &str,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Charges a late fee once per key: stores it and adds it to the invoice's outstanding
    /// amount, atomically. `false` if a fee with this key exists (nothing is written).
    fn charge_late_fee(
        &self,
        account_id: &str,
        charge: &LateFeeCharge,
    ) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Applies a payment result once per `event_id`: a success lowers the outstanding amount
    /// (to `paid` at zero), a failure is recorded. Conditional on the invoice not having
    /// changed since it was read (a conflict is [`StoreError::Conflict`]: read and retry).
    fn record_payment(
        &self,
        result: &PaymentResult,
        succeeded: bool,
    ) -> impl Future<Output = Result<PaymentOutcome, StoreError>> + Send;
}

/// A close whose finalization (numbering, events) may not be done: the outbox the close worker
/// empties after each batch and the scheduler sweeps.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingInvoice {
    pub account_id: String,
    pub invoice_id: String,
    /// When the close wrote the draft.
    pub since: DateTime<Utc>,
}

impl PendingInvoice {
    /// The marker of a draft.
    pub fn of(invoice: &Invoice) -> PendingInvoice {
        PendingInvoice {
            account_id: invoice.account_id.clone(),
            invoice_id: invoice.invoice_id.clone(),
            since: invoice.issued_at,
        }
    }
}

/// Drafts numbered by one conditional write, at most: the counter plus 99 invoices fill a
/// `TransactWriteItems` (100 items).
pub const NUMBERING_BATCH: usize = 99;

/// Drafts grouped for numbering: per issuer (in order of first appearance), in the order given,
/// in batches of at most [`NUMBERING_BATCH`]: one conditional write each.
pub fn numbering_batches(drafts: &[Invoice]) -> Vec<(&str, Vec<&Invoice>)> {
    let mut issuers: Vec<&str> = Vec::new();
    for d in drafts {
        if !issuers.contains(&d.issuer.prefix()) {
            issuers.push(d.issuer.prefix());
        }
    }
    let mut out = Vec::new();
    for prefix in issuers {
        let of_issuer: Vec<&Invoice> = drafts.iter().filter(|d| d.issuer.prefix() == prefix).collect();
        for batch in of_issuer.chunks(NUMBERING_BATCH) {
            out.push((prefix, batch.to_vec()));
        }
    }
    out
}

/// An invoice from the open index.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenInvoice {
    pub account_id: String,
    pub invoice_id: String,
    pub due_date: NaiveDate,
}

/// What a payment result did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentOutcome {
    /// Applied: the invoice's status and outstanding amount after it.
    Applied {
        status: InvoiceStatus,
        outstanding: Decimal,
    },
    /// This event was applied before: nothing changed.
    Duplicate,
    /// Recorded, but the invoice could not take it (already paid or void, or a failure).
    Recorded { status: InvoiceStatus },
    /// Refused: the result does not match its invoice (see [`check_payment`]). Nothing was
    /// written; the caller logs it.
    Rejected(PaymentMismatch),
}

/// Why a payment result does not match the invoice it names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PaymentMismatch {
    #[error("account {account_id} has no invoice {invoice_id}")]
    UnknownInvoice { account_id: String, invoice_id: String },
    #[error("invoice {invoice_id} belongs to account {owner}, not {account_id}")]
    Account {
        invoice_id: String,
        owner: String,
        account_id: String,
    },
    #[error("the payment is in {paid}, the invoice in {invoiced}")]
    Currency { paid: String, invoiced: String },
    #[error("amount {0} is not a positive amount in the currency's minor units")]
    Amount(Decimal),
    #[error("amount {amount} is more than the {outstanding} outstanding")]
    Overpaid { amount: Decimal, outstanding: Decimal },
}

/// Whether a payment result may apply to `invoice` (read under the result's account): the
/// invoice is the account's, in the result's currency, and a success pays a positive amount in
/// the currency's minor units, at most what is outstanding while the invoice is collectible (a
/// success for a paid or void invoice changes nothing and is recorded as it is).
pub fn check_payment(
    result: &PaymentResult,
    invoice: &Invoice,
    succeeded: bool,
) -> Result<(), PaymentMismatch> {
    if invoice.account_id != result.account_id || invoice.invoice_id != result.invoice_id {
        return Err(PaymentMismatch::Account {
            invoice_id: result.invoice_id.clone(),
            owner: invoice.account_id.clone(),
            account_id: result.account_id.clone(),
        });
    }
    if invoice.currency.code() != result.currency {
        return Err(PaymentMismatch::Currency {
            paid: result.currency.clone(),
            invoiced: invoice.currency.code().to_string(),
        });
    }
    if !succeeded {
        return Ok(());
    }
    let amount = result.amount;
    if amount <= Decimal::ZERO || invoice.currency.round(amount) != amount {
        return Err(PaymentMismatch::Amount(amount));
    }
    let collectible = invoice.status.is_collectible() || invoice.status == InvoiceStatus::Uncollectible;
    if collectible && amount > invoice.outstanding {
        return Err(PaymentMismatch::Overpaid {
            amount,
            outstanding: invoice.outstanding,
        });
    }
    Ok(())
}

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

/// Where billing events go (EventBridge in AWS).
pub trait EventPublisher: Send + Sync {
    /// Publishes events; at least once (a retry may publish an event again with the same id).
    fn publish(&self, events: &[BillingEvent]) -> impl Future<Output = Result<(), StoreError>> + Send;
}

/// The due-index shard of a subscription: spreads the index over `shards` partitions so the
/// scheduler's queries stay fast and parallel at any scale.
pub fn due_shard(subscription_id: &str, shards: u32) -> u32 {
    let digest = crate::ingest::fingerprint(subscription_id);
    let n = u64::from_str_radix(&digest[..8], 16).unwrap_or(0);
    (n % u64::from(shards.max(1))) as u32
}

/// Partitions of the due index. The scheduler queries each.
pub const DUE_SHARDS: u32 = 16;
