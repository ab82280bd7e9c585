//! The billing ports: where accounts, subscriptions, price books, invoices, credit notes,
//! provider statements and the invoice counters live ([`BillingStore`]), and where billing
//! events go ([`EventPublisher`]).

use crate::domain::billing::events::{BillingEvent, PaymentResult};
use crate::domain::billing::{
    Account, BillingSubscription, CreditNoteDoc, Invoice, InvoiceStatus, LateFeeCharge,
};
use crate::domain::money::Money;
use crate::domain::pricing::CatalogData;
use crate::ports::{Page, StoreError};
use chrono::{DateTime, NaiveDate, Utc};
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

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

/// The outcome of [`BillingStore::commit_upfront`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UpfrontOutcome {
    /// Written: the invoice as a draft, with its pending marker.
    Committed(Box<Invoice>),
    /// The upfront was invoiced already: nothing was written.
    AlreadyIssued,
}

/// Where billing state lives. Every write that matters is conditional, so that retries and
/// races produce one invoice with one number.
pub trait BillingStore: Send + Sync {
    fn put_account<'a>(&'a self, account: &'a Account) -> BoxFuture<'a, Result<(), StoreError>>;
    fn account<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<Option<Account>, StoreError>>;

    /// Creates or replaces a subscription, indexing it by `next_close_at` when it has one, and
    /// its upfront purchases by their term start until they are invoiced.
    fn put_subscription<'a>(
        &'a self,
        subscription: &'a BillingSubscription,
    ) -> BoxFuture<'a, Result<(), StoreError>>;
    fn subscription<'a>(
        &'a self,
        account_id: &'a str,
        subscription_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<BillingSubscription>, StoreError>>;

    /// Every subscription of an account, by id.
    fn account_subscriptions<'a>(
        &'a self,
        account_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<BillingSubscription>, StoreError>>;

    /// Subscriptions of index shard `shard` whose `next_close_at <= until`, oldest first; also
    /// (with `next_close_at` the term start) those with an upfront purchase whose term has
    /// started by `until` and which is neither invoiced nor dropped (see
    /// [`crate::domain::billing::upfront`]): the close invoices it.
    fn due_subscriptions<'a>(
        &'a self,
        shard: u32,
        until: DateTime<Utc>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<DueSubscription>, StoreError>>;

    fn put_catalog<'a>(&'a self, catalog: &'a CatalogData) -> BoxFuture<'a, Result<(), StoreError>>;
    fn catalog(&self) -> BoxFuture<'_, Result<CatalogData, StoreError>>;

    fn invoice<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Invoice>, StoreError>>;

    /// Invoices of a subscription whose period starts at or after `since`, oldest first.
    fn invoices_since<'a>(
        &'a self,
        account_id: &'a str,
        subscription_id: &'a str,
        since: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Vec<Invoice>, StoreError>>;

    /// Every credit note of an account.
    fn credit_notes<'a>(
        &'a self,
        account_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<CreditNoteDoc>, StoreError>>;

    /// Writes a close exactly once: the invoice as a draft (if it does not exist) with a
    /// pending marker, its credit notes, its provider statement entries, the account's new
    /// balance and the subscription's next close, all or nothing. It takes no invoice number, so
    /// closes of one issuer do not contend. A concurrent change of the balance is
    /// [`StoreError::Conflict`]: recompute and try again.
    fn commit_close<'a>(&'a self, commit: &'a CloseCommit)
        -> BoxFuture<'a, Result<CloseOutcome, StoreError>>;

    /// Writes a reservation's upfront invoice exactly once: the invoice as a draft (if it does
    /// not exist) with its pending marker and its provider statement entries, and the purchase's
    /// wake-up marked done, all or nothing. Numbering finalizes it like a close's draft.
    fn commit_upfront<'a>(
        &'a self,
        invoice: &'a Invoice,
    ) -> BoxFuture<'a, Result<UpfrontOutcome, StoreError>>;

    /// Marks the wake-up of the upfront purchase `invoice_id` done without an invoice: the
    /// reservation ended before its term started, nothing is owed. Idempotent.
    fn drop_upfront<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// Numbers and finalizes the drafts given that are still drafts, in the order given, with
    /// the next numbers of their issuers: per issuer, one conditional write per
    /// [`NUMBERING_BATCH`] drafts moves the counter from `n` to `n + k` and opens the `k` drafts
    /// (each on condition it is still a draft), so a number is taken only with the invoice it
    /// goes to. Returns the invoices this call finalized; drafts another call numbered first are
    /// left out. Their pending markers stay (see [`BillingStore::clear_pending`]).
    fn number_drafts<'a>(&'a self, drafts: &'a [Invoice]) -> BoxFuture<'a, Result<Vec<Invoice>, StoreError>>;

    /// Pending markers of shard `shard` (of [`DUE_SHARDS`]) written at or before `until`: closes
    /// whose invoice may still need numbering or whose events may not have been published.
    fn pending_invoices<'a>(
        &'a self,
        shard: u32,
        until: DateTime<Utc>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<PendingInvoice>, StoreError>>;

    /// The pending marker of one invoice, if it still has one.
    fn pending_invoice<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<PendingInvoice>, StoreError>>;

    /// Removes pending markers: their invoices are numbered and their events published.
    fn clear_pending<'a>(&'a self, done: &'a [PendingInvoice]) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The last number issued by an issuer (0 when none).
    fn last_number<'a>(&'a self, issuer_prefix: &'a str) -> BoxFuture<'a, Result<u64, StoreError>>;

    /// Invoices with something outstanding (open or past due) of open-index shard `shard`,
    /// due on or before `due_by`.
    fn open_invoices<'a>(
        &'a self,
        shard: u32,
        due_by: NaiveDate,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<OpenInvoice>, StoreError>>;

    /// Moves an `open` invoice to `past_due`; `false` if it was not `open` any more.
    fn mark_past_due<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// Charges a late fee once per key: stores it (not yet announced, see
    /// [`BillingStore::unannounced_fee`] and [`BillingStore::unannounced_fees`]) and adds it to the invoice's outstanding amount,
    /// atomically. `false` if a fee with this key exists (nothing is written).
    fn charge_late_fee<'a>(
        &'a self,
        account_id: &'a str,
        charge: &'a LateFeeCharge,
    ) -> BoxFuture<'a, Result<bool, StoreError>>;

    /// The late fee under `key` if it is charged but its `InvoiceOverdue` is not known to be
    /// published ([`BillingStore::fee_announced`] not called since the charge): a check that
    /// failed or stopped between the two left it, and the next check publishes it.
    fn unannounced_fee<'a>(
        &'a self,
        account_id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<LateFeeCharge>, StoreError>>;

    /// Records that the `InvoiceOverdue` of the fee under `key` was published, and takes it off
    /// the list of [`BillingStore::unannounced_fees`]. Idempotent; a fee that does not exist is
    /// left absent.
    fn fee_announced<'a>(
        &'a self,
        account_id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>>;

    /// The late fees of accounts in due shard `shard` (`due_shard(account, DUE_SHARDS)`) charged
    /// and not known to be announced, with their accounts, in key order: listed by
    /// [`BillingStore::charge_late_fee`] in the same write as the fee, so a fee whose check
    /// failed before publishing is found even when no later check computes it again (the invoice
    /// paid, or its next fee period begun). A listed fee already announced is only delisted.
    fn unannounced_fees(&self, shard: u32)
        -> BoxFuture<'_, Result<Vec<(String, LateFeeCharge)>, StoreError>>;

    /// Applies a payment result once per `event_id`: a success lowers the outstanding amount
    /// (to `paid` at zero), a failure is recorded. Conditional on the invoice not having
    /// changed since it was read (a conflict is [`StoreError::Conflict`]: read and retry).
    fn record_payment<'a>(
        &'a self,
        result: &'a PaymentResult,
        succeeded: bool,
    ) -> BoxFuture<'a, Result<PaymentOutcome, StoreError>>;
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

/// Where billing events go (EventBridge in AWS).
pub trait EventPublisher: Send + Sync {
    /// Publishes events; at least once (a retry may publish an event again with the same id).
    fn publish<'a>(&'a self, events: &'a [BillingEvent]) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// One subscription to close: the body of a close-queue message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseRequest {
    pub account_id: String,
    pub subscription_id: String,
    /// The end of the period the scheduler saw ended (the subscription's `next_close_at`).
    pub period_end: DateTime<Utc>,
}

/// Where close requests wait for the worker (SQS in AWS).
pub trait CloseQueue: Send + Sync {
    fn send<'a>(&'a self, requests: &'a [CloseRequest]) -> BoxFuture<'a, Result<(), StoreError>>;
}

/// The due-index shard of a subscription: spreads the index over `shards` partitions so the
/// scheduler's queries stay fast and parallel at any scale.
pub fn due_shard(subscription_id: &str, shards: u32) -> u32 {
    let digest = crate::domain::usage::intake::fingerprint(subscription_id);
    let n = u64::from_str_radix(&digest[..8], 16).unwrap_or(0);
    (n % u64::from(shards.max(1))) as u32
}

/// Partitions of the due index. The scheduler queries each.
pub const DUE_SHARDS: u32 = 16;
