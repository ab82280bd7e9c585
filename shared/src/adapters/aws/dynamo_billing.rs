//! The [`BillingStore`] on one DynamoDB table (`BillingTable` in the template), keyed by `pk`
//! and `sk`, with the sparse global secondary index `DueIndex` (`due_pk`, `due_at`).
//!
//! | item | `pk` | `sk` | notes |
//! |---|---|---|---|
//! | account | `ACCT#<account>` | `ACCOUNT` | `doc` (JSON), `balance` (N): the credit balance, conditioned on |
//! | subscription | `ACCT#<account>` | `SUB#<subscription>` | `doc`, `next_close_at`; `due_pk` = `DUE#<shard>`, `due_at` while it has a next close |
//! | invoice | `ACCT#<account>` | `INV#<invoice id>` | `doc`, `status`, `number`, totals, `due_date` |
//! | credit note | `ACCT#<account>` | `CN#<credit note id>` | `doc` |
//! | invoice counter | `ISSUER#<prefix>` | `COUNTER` | `seq` (N): the last number issued |
//! | pending marker | `PENDING#<shard>` | `<account>#<invoice id>` | `account_id`, `invoice_id`, `since`: a close not yet numbered or published |
//! | upfront purchase | `ACCT#<account>` | `UPFRONT#<invoice id>` | `account_id`, `subscription_id`; `due_pk`, `due_at` (the term start) until its upfront is invoiced or dropped |
//! | provider statement | `PROV#<provider>` | `STMT#<period end>#<invoice id>` | `doc`, amounts; written once (an existing entry fails the close) |
//! | catalog | `CATALOG` | `CURRENT` | `doc`: price books, tax rates, fees |
//! | late fee | `ACCT#<account>` | `FEE#<late-fee key>` | written once per key; `unannounced` until its `InvoiceOverdue` is published |
//! | unannounced fee | `FEES_UNANNOUNCED#<shard>` | `<account>#<late-fee key>` | `account_id`, `doc`: written with the fee, deleted once it is announced |
//! | payment result | `ACCT#<account>` | `PAY#<event id>` | written once per event |
//! | budget | `ACCT#<account>` | `BUDGET#<budget id>` | `doc` (see `dynamo_budgets`) |
//! | budget index | `BUDGETS#<shard>` | `<account>#<budget id>` | `account_id`: the accounts the budget check visits |
//! | alert claim | `NOTIFY#<key>` | `NOTIFY` | written once per threshold, budget and period |
//! | unsent alert | `NOTIFY_UNSENT#<shard>` | `<key>` | `doc`: written with the claim, deleted once the alert is published |
//! | credit ledger state | `ACCT#<account>` | `CREDIT#STATE` | `version`, `entries`, `doc` (see `dynamo_credits`) |
//! | credit ledger entry | `ACCT#<account>` | `CREDIT#ENTRY#<seq, 20 digits>` | `seq`, `doc`: append-only |
//!
//! Invoices with something outstanding are in the sparse index `OpenIndex` (`open_pk` =
//! `OPEN#<shard>`, `open_due` = `<due date>#<invoice id>`) until paid. Every invoice is in
//! `IssuedIndex` (`issued_pk` = `ISSUED#<yyyy-mm>#<shard>`, `issued_at`), which projects the whole
//! item: the tax report and the operator's list read it (see `dynamo_invoices`). A voided
//! invoice's statement entries get `voided`; manual credit notes add up in the invoice's
//! `credited`.
//!
//! A close is one `TransactWriteItems`: put the invoice as a draft if it does not exist;
//! advance the subscription's `next_close_at` if it still has the value the close read; set the
//! account balance if it still has the value read; put the pending marker; put the credit notes
//! if new; put the provider statement entries if new (invoice ids carry their account, so an
//! existing entry is a collision: the close fails with `StoreError::Collision`). No item is
//! shared between two accounts' closes.
//!
//! Numbering is a second `TransactWriteItems` per issuer and up to 99 drafts: set the issuer
//! counter from `n` to `n + k` if it is still `n`, and for each draft set `status` = `open`,
//! `number` (authoritative over the stored document, like `status`) and the open-index keys, if
//! it is still a draft. Any failed condition cancels everything, so a number is used only by an
//! invoice it finalizes: no gaps, no duplicates.

use super::attrs::{get_s, get_u64, n, s, Item};
use super::backoff;
use super::dynamo::{batch_write, build_error, get_item, query_all, query_page, transact, unavailable};
use crate::domain::billing::events::PaymentResult;
use crate::domain::billing::ledger::apply_payment;
use crate::domain::billing::statement::ProviderStatement;
use crate::domain::billing::upfront::{upfront_invoice_id, upfront_purchases};
use crate::domain::billing::{
    Account, BillingSubscription, CreditNoteDoc, Invoice, InvoiceStatus, LateFeeCharge,
};
use crate::domain::pricing::CatalogData;
use crate::ports::billing::{
    check_payment, due_shard, numbering_batches, BillingStore, CloseCommit, CloseOutcome, DueSubscription,
    OpenInvoice, PaymentMismatch, PaymentOutcome, PendingInvoice, UpfrontOutcome, DUE_SHARDS,
};
use crate::ports::{Page, StoreError};
use aws_sdk_dynamodb::error::DisplayErrorContext;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use aws_sdk_dynamodb::Client;
use chrono::{DateTime, NaiveDate, Utc};
use futures::future::BoxFuture;
use rust_decimal::Decimal;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Attempts of one write that conflicts with concurrent ones (a close, a numbering batch).
const MAX_ATTEMPTS: u32 = 25;
/// `TransactWriteItems` takes at most 100 items.
const MAX_TRANSACTION_ITEMS: usize = 100;

/// Billing state on DynamoDB.
pub struct DynamoBillingStore {
    pub(super) client: Client,
    pub(super) table: String,
}

#[allow(clippy::expect_used)] // Cannot fail: derived Serialize of our own types with string keys cannot fail.
pub(super) fn to_doc<T: Serialize>(v: &T) -> AttributeValue {
    s(serde_json::to_string(v).expect("billing documents serialize"))
}

pub(super) fn from_doc<T: DeserializeOwned>(item: &Item) -> Result<T, StoreError> {
    serde_json::from_str(get_s(item, "doc")?)
        .map_err(|e| StoreError::Corrupt(format!("attribute `doc`: {e}")))
}

/// A `Corrupt` error that names the item it was read from (the others as they are).
pub(super) fn naming(e: StoreError, item: impl FnOnce() -> String) -> StoreError {
    match e {
        StoreError::Corrupt(m) => StoreError::Corrupt(format!("{}: {m}", item())),
        other => other,
    }
}

/// Instants as stored and sorted: fixed width, UTC, milliseconds.
pub(super) fn instant(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

pub(super) fn account_pk(account_id: &str) -> String {
    format!("ACCT#{account_id}")
}

/// The attribute of a late fee item whose `InvoiceOverdue` is not known to be published.
const UNANNOUNCED: &str = "unannounced";

/// The key of a late fee's entry in the list of fees not yet announced.
fn unannounced_key(account_id: &str, fee_key: &str) -> (String, String) {
    (
        format!("FEES_UNANNOUNCED#{}", due_shard(account_id, DUE_SHARDS)),
        format!("{account_id}#{fee_key}"),
    )
}

impl DynamoBillingStore {
    pub fn new(client: Client, table: String) -> Self {
        DynamoBillingStore { client, table }
    }

    pub(super) async fn get(&self, pk: &str, sk: &str) -> Result<Option<Item>, StoreError> {
        get_item(&self.client, &self.table, pk, sk).await
    }

    pub(super) async fn put(&self, item: Item) -> Result<(), StoreError> {
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(unavailable)?;
        Ok(())
    }

    /// Removes attribute `attr` of an existing item; an absent item stays absent. A write that
    /// meets a transaction on the item (`TransactionConflictException`: the write that flagged it
    /// may still hold it) is sent again with backoff, as DynamoDB asks.
    pub(super) async fn remove_attribute(
        &self,
        pk: String,
        sk: String,
        attr: &str,
    ) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(pk.clone()))
                .key("sk", s(sk.clone()))
                .update_expression("REMOVE #a")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_names("#a", attr)
                .send()
                .await;
            let service = result.as_ref().err().and_then(|e| e.as_service_error());
            if service.is_some_and(|e| e.is_transaction_conflict_exception()) && attempt < MAX_ATTEMPTS {
                backoff(attempt.min(4)).await;
                continue;
            }
            return match result {
                Ok(_) => Ok(()),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    Ok(())
                }
                Err(e) => Err(unavailable(e)),
            };
        }
    }

    /// Every item of `pk` with `lo <= sk <= hi`, following pages.
    pub(super) async fn query_range(&self, pk: &str, lo: &str, hi: &str) -> Result<Vec<Item>, StoreError> {
        query_all(
            self.client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
                .expression_attribute_values(":pk", s(pk))
                .expression_attribute_values(":lo", s(lo))
                .expression_attribute_values(":hi", s(hi))
                .consistent_read(true),
        )
        .await
    }

    pub(super) fn parse_invoice(item: &Item) -> Result<Invoice, StoreError> {
        let mut inv: Invoice = from_doc(item)?;
        // The status and outstanding attributes are authoritative: payment and overdue updates
        // change them alone.
        let status = get_s(item, "status")?;
        inv.status = serde_json::from_value(serde_json::Value::String(status.to_string()))
            .map_err(|e| StoreError::Corrupt(format!("attribute `status`: {e}")))?;
        inv.outstanding = super::attrs::get_decimal(item, "outstanding")?;
        if let Some(number) = super::attrs::get_opt_s(item, "number") {
            inv.number = Some(number);
        }
        Ok(inv)
    }

    fn parse_subscription(item: &Item) -> Result<BillingSubscription, StoreError> {
        let mut sub: BillingSubscription = from_doc(item)?;
        // The attribute is authoritative: closes advance it alone.
        sub.next_close_at = match super::attrs::get_opt_s(item, "next_close_at") {
            None => None,
            Some(t) => Some(
                t.parse()
                    .map_err(|e| StoreError::Corrupt(format!("attribute `next_close_at`: {e}")))?,
            ),
        };
        Ok(sub)
    }

    fn invoice_item(inv: &Invoice) -> Item {
        let mut item = Item::new();
        item.insert("pk".into(), s(account_pk(&inv.account_id)));
        item.insert("sk".into(), s(format!("INV#{}", inv.invoice_id)));
        item.insert("doc".into(), to_doc(inv));
        item.insert("status".into(), s(inv.status.as_str()));
        if let Some(num) = &inv.number {
            item.insert("number".into(), s(num));
        }
        item.insert("subscription_id".into(), s(&inv.subscription_id));
        item.insert("period_start".into(), s(instant(inv.period.start)));
        item.insert("period_end".into(), s(instant(inv.period.end)));
        item.insert("currency".into(), s(inv.currency.code()));
        item.insert("total".into(), n(inv.total));
        item.insert("amount_due".into(), n(inv.amount_due));
        item.insert("outstanding".into(), n(inv.outstanding));
        item.insert("due_date".into(), s(inv.due_date.to_string()));
        // IssuedIndex: every invoice by issue month and time (tax report, operator list).
        item.insert(
            "issued_pk".into(),
            s(super::dynamo_invoices::issued_pk(inv.issued_at, &inv.invoice_id)),
        );
        item.insert("issued_at".into(), s(instant(inv.issued_at)));
        if inv.status != InvoiceStatus::Draft && inv.outstanding > Decimal::ZERO {
            let (open_pk, open_due) = Self::open_keys(inv);
            item.insert("open_pk".into(), s(open_pk));
            item.insert("open_due".into(), s(open_due));
            item.insert("account_id".into(), s(&inv.account_id));
            item.insert("invoice_id".into(), s(&inv.invoice_id));
        }
        item
    }

    /// The `OpenIndex` keys of an invoice with something outstanding.
    fn open_keys(inv: &Invoice) -> (String, String) {
        (
            format!("OPEN#{}", due_shard(&inv.invoice_id, DUE_SHARDS)),
            format!("{}#{}", inv.due_date, inv.invoice_id),
        )
    }

    pub(super) fn invoice_key(account_id: &str, invoice_id: &str) -> [(String, AttributeValue); 2] {
        [
            ("pk".to_string(), s(account_pk(account_id))),
            ("sk".to_string(), s(format!("INV#{invoice_id}"))),
        ]
    }

    /// Writes `items` in one transaction: `None` if it committed, else which items' conditions
    /// failed (see [`transact`]: a conflict is tried again with backoff, up to [`MAX_ATTEMPTS`]
    /// times, and is never reported as a failed condition).
    pub(super) async fn transact(
        &self,
        items: Vec<TransactWriteItem>,
    ) -> Result<Option<Vec<bool>>, StoreError> {
        transact(&self.client, items, MAX_ATTEMPTS).await
    }

    fn statement_item(inv: &Invoice, st: &ProviderStatement) -> Item {
        let mut item = Item::new();
        item.insert("pk".into(), s(format!("PROV#{}", st.provider_id)));
        item.insert(
            "sk".into(),
            s(format!("STMT#{}#{}", instant(inv.period.end), inv.invoice_id)),
        );
        item.insert("doc".into(), to_doc(st));
        item.insert("invoice_id".into(), s(&inv.invoice_id));
        item.insert("account_id".into(), s(&inv.account_id));
        item.insert("currency".into(), s(inv.currency.code()));
        item.insert("usage_billed".into(), n(st.usage_billed.amount));
        item.insert("marketplace_fee".into(), n(st.marketplace_fee.amount));
        item.insert("payout".into(), n(st.payout.amount));
        item.insert("tax".into(), n(st.tax.amount));
        item
    }

    /// The ids of an account's subscriptions.
    pub async fn subscription_ids(&self, account_id: &str) -> Result<Vec<String>, StoreError> {
        let items = self.query_range(&account_pk(account_id), "SUB#", "SUB#~").await?;
        items
            .iter()
            .map(|i| get_s(i, "subscription_id").map(str::to_string))
            .collect()
    }

    /// Provider statement entries of `provider` for periods ending in `[from, to)`.
    pub async fn provider_statements(
        &self,
        provider_id: &str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Result<Vec<(String, ProviderStatement)>, StoreError> {
        let items = self
            .query_range(
                &format!("PROV#{provider_id}"),
                &format!("STMT#{}", instant(from)),
                &format!("STMT#{}", instant(to)),
            )
            .await?;
        items
            .iter()
            .map(|i| Ok((get_s(i, "invoice_id")?.to_string(), from_doc(i)?)))
            .collect()
    }

    /// The close's transaction items: the draft at 0, the subscription at 1, the balance at 2,
    /// the pending marker at 3, then the credit notes and the statement entries.
    fn close_items(&self, c: &CloseCommit) -> Result<Vec<TransactWriteItem>, StoreError> {
        let inv = &c.invoice;
        let pk = account_pk(&inv.account_id);
        let mut items = Vec::new();
        let put = |item: Item, condition: Option<&str>| -> Result<TransactWriteItem, StoreError> {
            let mut p = Put::builder().table_name(&self.table).set_item(Some(item));
            if let Some(cond) = condition {
                p = p.condition_expression(cond);
            }
            Ok(TransactWriteItem::builder()
                .put(p.build().map_err(build_error)?)
                .build())
        };
        // 0: the invoice, once.
        items.push(put(Self::invoice_item(inv), Some("attribute_not_exists(pk)"))?);
        // 1: the subscription moves on, if nobody moved it.
        let mut sub = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", s(format!("SUB#{}", inv.subscription_id)))
            .condition_expression("next_close_at = :expected")
            .expression_attribute_values(":expected", s(instant(c.expected_next_close)));
        sub = match c.next_close {
            Some(next) => sub
                .update_expression("SET next_close_at = :next, due_at = :next")
                .expression_attribute_values(":next", s(instant(next))),
            None => sub.update_expression("REMOVE next_close_at, due_at, due_pk"),
        };
        items.push(
            TransactWriteItem::builder()
                .update(sub.build().map_err(build_error)?)
                .build(),
        );
        // 2: the account's credit balance, if unchanged.
        let account = Update::builder()
            .table_name(&self.table)
            .key("pk", s(&pk))
            .key("sk", s("ACCOUNT"))
            .update_expression("SET balance = :new")
            .condition_expression("balance = :old")
            .expression_attribute_values(":new", n(c.new_balance.amount))
            .expression_attribute_values(":old", n(c.expected_balance.amount))
            .build()
            .map_err(build_error)?;
        items.push(TransactWriteItem::builder().update(account).build());
        // 3: the pending marker (the outbox of numbering and events).
        items.push(put(
            Self::pending_item(&PendingInvoice::of(inv)),
            Some("attribute_not_exists(pk)"),
        )?);
        // Credit notes, once each.
        for note in &c.credit_notes {
            let mut item = Item::new();
            item.insert("pk".into(), s(account_pk(&note.account_id)));
            item.insert("sk".into(), s(format!("CN#{}", note.credit_note_id)));
            item.insert("doc".into(), to_doc(note));
            item.insert("amount".into(), n(note.amount));
            items.push(put(item, Some("attribute_not_exists(pk)"))?);
        }
        // Provider statement entries, once each: an entry of the same provider, period end and
        // invoice id is a collision (an error), never overwritten.
        for st in &inv.statements.statements {
            items.push(put(
                Self::statement_item(inv, st),
                Some("attribute_not_exists(pk)"),
            )?);
        }
        if items.len() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::Corrupt(format!(
                "invoice {} needs {} writes, more than one transaction holds (too many providers)",
                inv.invoice_id,
                items.len()
            )));
        }
        Ok(items)
    }

    /// The item of an upfront purchase: in the due index at its term start (`due`), or out of
    /// it once invoiced or dropped.
    fn upfront_item(
        account_id: &str,
        subscription_id: &str,
        invoice_id: &str,
        due: Option<DateTime<Utc>>,
    ) -> Item {
        let mut item = Item::new();
        item.insert("pk".into(), s(account_pk(account_id)));
        item.insert("sk".into(), s(format!("UPFRONT#{invoice_id}")));
        item.insert("account_id".into(), s(account_id));
        item.insert("subscription_id".into(), s(subscription_id));
        if let Some(at) = due {
            item.insert(
                "due_pk".into(),
                s(format!("DUE#{}", due_shard(subscription_id, DUE_SHARDS))),
            );
            item.insert("due_at".into(), s(instant(at)));
        }
        item
    }

    /// Puts the due-index item of every upfront purchase of the subscription that has none yet
    /// (one invoiced or dropped keeps its item, out of the index, and is not woken again). A
    /// purchase missed here (a crash after the subscription's write) is invoiced by the
    /// subscription's next close.
    pub(super) async fn wake_upfronts(&self, sub: &BillingSubscription) -> Result<(), StoreError> {
        for (_, r) in upfront_purchases(sub) {
            let id = upfront_invoice_id(&sub.account_id, &sub.subscription_id, r);
            let item = Self::upfront_item(&sub.account_id, &sub.subscription_id, &id, Some(r.term_start));
            let out = self
                .client
                .put_item()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .send()
                .await;
            match out {
                Ok(_) => {}
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(())
    }

    /// The items of an upfront invoice's write: the invoice if new, its pending marker, its
    /// purchase out of the due index, its statement entries.
    fn upfront_items(&self, inv: &Invoice) -> Result<Vec<TransactWriteItem>, StoreError> {
        let put = |item: Item, condition: Option<&str>| -> Result<TransactWriteItem, StoreError> {
            let mut p = Put::builder().table_name(&self.table).set_item(Some(item));
            if let Some(cond) = condition {
                p = p.condition_expression(cond);
            }
            Ok(TransactWriteItem::builder()
                .put(p.build().map_err(build_error)?)
                .build())
        };
        let mut items = vec![
            put(Self::invoice_item(inv), Some("attribute_not_exists(pk)"))?,
            put(
                Self::pending_item(&PendingInvoice::of(inv)),
                Some("attribute_not_exists(pk)"),
            )?,
            put(
                Self::upfront_item(&inv.account_id, &inv.subscription_id, &inv.invoice_id, None),
                None,
            )?,
        ];
        for st in &inv.statements.statements {
            items.push(put(Self::statement_item(inv, st), None)?);
        }
        if items.len() > MAX_TRANSACTION_ITEMS {
            return Err(StoreError::Corrupt(format!(
                "invoice {} needs {} writes, more than one transaction holds",
                inv.invoice_id,
                items.len()
            )));
        }
        Ok(items)
    }

    fn pending_key(account_id: &str, invoice_id: &str) -> (String, String) {
        (
            format!("PENDING#{}", due_shard(invoice_id, DUE_SHARDS)),
            format!("{account_id}#{invoice_id}"),
        )
    }

    fn pending_item(p: &PendingInvoice) -> Item {
        let (pk, sk) = Self::pending_key(&p.account_id, &p.invoice_id);
        let mut item = Item::new();
        item.insert("pk".into(), s(pk));
        item.insert("sk".into(), s(sk));
        item.insert("account_id".into(), s(&p.account_id));
        item.insert("invoice_id".into(), s(&p.invoice_id));
        item.insert("since".into(), s(instant(p.since)));
        item
    }

    fn parse_pending(item: &Item) -> Result<PendingInvoice, StoreError> {
        Ok(PendingInvoice {
            account_id: get_s(item, "account_id")?.to_string(),
            invoice_id: get_s(item, "invoice_id")?.to_string(),
            since: super::attrs::parse(item, "since")?,
        })
    }

    /// The numbering write of drafts of one issuer, from counter value `last`: the counter at 0,
    /// then one update per draft. Returns the invoices as finalized.
    fn numbering_items(
        &self,
        prefix: &str,
        last: u64,
        drafts: &[&Invoice],
    ) -> Result<(Vec<Invoice>, Vec<TransactWriteItem>), StoreError> {
        let next = last + drafts.len() as u64;
        let mut counter = Update::builder()
            .table_name(&self.table)
            .key("pk", s(format!("ISSUER#{prefix}")))
            .key("sk", s("COUNTER"))
            .update_expression("SET seq = :seq")
            .expression_attribute_values(":seq", n(next));
        counter = if last == 0 {
            counter.condition_expression("attribute_not_exists(seq)")
        } else {
            counter
                .condition_expression("seq = :prev")
                .expression_attribute_values(":prev", n(last))
        };
        let mut items = vec![TransactWriteItem::builder()
            .update(counter.build().map_err(build_error)?)
            .build()];
        let mut finalized = Vec::with_capacity(drafts.len());
        for (i, draft) in drafts.iter().enumerate() {
            let inv = (*draft)
                .clone()
                .finalize(last + 1 + i as u64)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            let [(_, pk), (_, sk)] = Self::invoice_key(&inv.account_id, &inv.invoice_id);
            let mut update = Update::builder()
                .table_name(&self.table)
                .key("pk", pk)
                .key("sk", sk)
                .condition_expression("#status = :draft")
                .expression_attribute_names("#status", "status")
                .expression_attribute_names("#number", "number")
                .expression_attribute_values(":draft", s(InvoiceStatus::Draft.as_str()))
                .expression_attribute_values(":open", s(inv.status.as_str()))
                .expression_attribute_values(":number", s(inv.number.as_deref().unwrap_or_default()));
            update = if inv.outstanding > Decimal::ZERO {
                let (open_pk, open_due) = Self::open_keys(&inv);
                update
                    .update_expression(
                        "SET #status = :open, #number = :number, open_pk = :open_pk, open_due = :open_due, \
                         account_id = :account, invoice_id = :invoice",
                    )
                    .expression_attribute_values(":open_pk", s(open_pk))
                    .expression_attribute_values(":open_due", s(open_due))
                    .expression_attribute_values(":account", s(&inv.account_id))
                    .expression_attribute_values(":invoice", s(&inv.invoice_id))
            } else {
                update.update_expression("SET #status = :open, #number = :number")
            };
            items.push(
                TransactWriteItem::builder()
                    .update(update.build().map_err(build_error)?)
                    .build(),
            );
            finalized.push(inv);
        }
        Ok((finalized, items))
    }

    /// Numbers up to [`NUMBERING_BATCH`](crate::ports::billing::NUMBERING_BATCH) drafts of issuer `prefix` (see
    /// [`BillingStore::number_drafts`]).
    async fn number_batch(&self, prefix: &str, batch: &[&Invoice]) -> Result<Vec<Invoice>, StoreError> {
        let mut left: Vec<&Invoice> = batch.to_vec();
        let mut attempt = 0;
        loop {
            if left.is_empty() {
                return Ok(Vec::new());
            }
            let last = self.last_number(prefix).await?;
            let (finalized, items) = self.numbering_items(prefix, last, &left)?;
            let err = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items))
                .send()
                .await
            {
                Ok(_) => return Ok(finalized),
                Err(err) => err,
            };
            match err.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(tc)) => {
                    let failed: Vec<bool> = tc
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code() == Some("ConditionalCheckFailed"))
                        .collect();
                    if failed.len() == left.len() + 1 {
                        // Drafts another call numbered first are not ours to number; a failed
                        // counter (another numbering of this issuer) or a conflict: read again.
                        left = left
                            .into_iter()
                            .zip(&failed[1..])
                            .filter(|(_, f)| !**f)
                            .map(|(d, _)| d)
                            .collect();
                    } else {
                        // No reasons (some endpoints): keep the drafts that are still drafts.
                        let mut still = Vec::with_capacity(left.len());
                        for d in left {
                            let status = self
                                .invoice(&d.account_id, &d.invoice_id)
                                .await?
                                .map(|i| i.status);
                            if status == Some(InvoiceStatus::Draft) {
                                still.push(d);
                            }
                        }
                        left = still;
                    }
                }
                Some(e) if super::is_transient(e) => {}
                _ => return Err(StoreError::Unavailable(DisplayErrorContext(&err).to_string())),
            }
            attempt += 1;
            if attempt >= MAX_ATTEMPTS {
                return Err(StoreError::Conflict(format!(
                    "numbering {} drafts of issuer {prefix}: {}",
                    left.len(),
                    DisplayErrorContext(&err)
                )));
            }
            backoff(attempt.min(4)).await;
        }
    }

    fn account_item(account: &Account) -> Item {
        let mut item = Item::new();
        item.insert("pk".into(), s(account_pk(&account.account_id)));
        item.insert("sk".into(), s("ACCOUNT"));
        item.insert("doc".into(), to_doc(account));
        item.insert("balance".into(), n(account.credit_balance.amount));
        item
    }

    /// The subscription item as `put_subscription` writes it (also the directory's).
    pub(super) fn subscription_item(sub: &BillingSubscription) -> Item {
        let mut item = Item::new();
        item.insert("pk".into(), s(account_pk(&sub.account_id)));
        item.insert("sk".into(), s(format!("SUB#{}", sub.subscription_id)));
        item.insert("doc".into(), to_doc(sub));
        item.insert("account_id".into(), s(&sub.account_id));
        item.insert("subscription_id".into(), s(&sub.subscription_id));
        if let Some(next) = sub.next_close_at {
            item.insert("next_close_at".into(), s(instant(next)));
            item.insert(
                "due_pk".into(),
                s(format!("DUE#{}", due_shard(&sub.subscription_id, DUE_SHARDS))),
            );
            item.insert("due_at".into(), s(instant(next)));
        }
        item
    }

    /// Bulk load (migrations, benchmarks): the same items as `put_account` and
    /// `put_subscription`, unconditionally, 25 to a `BatchWriteItem`, unprocessed items retried.
    pub async fn load_accounts(
        &self,
        accounts: &[Account],
        subscriptions: &[BillingSubscription],
    ) -> Result<(), StoreError> {
        use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
        let items = accounts
            .iter()
            .map(Self::account_item)
            .chain(subscriptions.iter().map(Self::subscription_item));
        let mut requests = Vec::new();
        for item in items {
            let put = PutRequest::builder()
                .set_item(Some(item))
                .build()
                .map_err(build_error)?;
            requests.push(WriteRequest::builder().put_request(put).build());
        }
        self.batch_write(requests, "accounts").await
    }

    /// Writes requests with `BatchWriteItem`s, retrying unprocessed ones; `what` names them in
    /// the error if some stay unprocessed.
    async fn batch_write(
        &self,
        requests: Vec<aws_sdk_dynamodb::types::WriteRequest>,
        what: &str,
    ) -> Result<(), StoreError> {
        batch_write(&self.client, &self.table, requests, what, MAX_ATTEMPTS)
            .await
            .map(drop)
    }

    /// After a cancellation without reasons: is one of the invoice's statement entries taken?
    async fn statement_taken(&self, inv: &Invoice) -> Result<bool, StoreError> {
        for st in &inv.statements.statements {
            let item = Self::statement_item(inv, st);
            let (Some(pk), Some(sk)) = (item.get("pk"), item.get("sk")) else {
                continue;
            };
            let (Ok(pk), Ok(sk)) = (pk.as_s(), sk.as_s()) else {
                continue;
            };
            if self.get(pk, sk).await?.is_some() {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// After a cancellation without reasons: was the period closed by someone else?
    async fn closed_elsewhere(&self, c: &CloseCommit) -> Result<bool, StoreError> {
        if self
            .invoice(&c.invoice.account_id, &c.invoice.invoice_id)
            .await?
            .is_some()
        {
            return Ok(true);
        }
        let sub = self
            .subscription(&c.invoice.account_id, &c.invoice.subscription_id)
            .await?;
        Ok(sub.is_none_or(|s| s.next_close_at != Some(c.expected_next_close)))
    }
}

/// A close whose provider statement entry exists already (another invoice's): refused, logged.
fn statement_collision(inv: &Invoice) -> StoreError {
    tracing::error!(
        invoice_id = %inv.invoice_id,
        account_id = %inv.account_id,
        "provider statement entry exists: the close is refused, nothing overwritten"
    );
    StoreError::Collision(format!(
        "a provider statement entry of invoice {} exists",
        inv.invoice_id
    ))
}

impl BillingStore for DynamoBillingStore {
    fn put_account<'a>(&'a self, account: &'a Account) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move { self.put(Self::account_item(account)).await })
    }

    fn account<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<Option<Account>, StoreError>> {
        Box::pin(async move {
            let Some(item) = self.get(&account_pk(account_id), "ACCOUNT").await? else {
                return Ok(None);
            };
            let read = || -> Result<Account, StoreError> {
                let mut account: Account = from_doc(&item)?;
                account.credit_balance.amount = super::attrs::get_decimal(&item, "balance")?;
                Ok(account)
            };
            read()
                .map(Some)
                .map_err(|e| naming(e, || format!("account {account_id}")))
        })
    }

    fn put_subscription<'a>(&'a self, sub: &'a BillingSubscription) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.put(Self::subscription_item(sub)).await?;
            self.wake_upfronts(sub).await
        })
    }

    fn subscription<'a>(
        &'a self,
        account_id: &'a str,
        subscription_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<BillingSubscription>, StoreError>> {
        Box::pin(async move {
            let Some(item) = self
                .get(&account_pk(account_id), &format!("SUB#{subscription_id}"))
                .await?
            else {
                return Ok(None);
            };
            Self::parse_subscription(&item).map(Some).map_err(|e| {
                naming(e, || {
                    format!("subscription {subscription_id} of account {account_id}")
                })
            })
        })
    }

    fn account_subscriptions<'a>(
        &'a self,
        account_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<BillingSubscription>, StoreError>> {
        Box::pin(async move {
            let items = self.query_range(&account_pk(account_id), "SUB#", "SUB#~").await?;
            items.iter().map(Self::parse_subscription).collect()
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
            let due_pk = format!("DUE#{shard}");
            let q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("DueIndex")
                .key_condition_expression("due_pk = :p AND due_at <= :until")
                .expression_attribute_values(":p", s(&due_pk))
                .expression_attribute_values(":until", s(instant(until)))
                .limit(limit.clamp(1, 1000) as i32);
            // The cursor is `due_at|pk|sk` of the last item read.
            query_page(q, &[("due_pk", &due_pk)], &["due_at", "pk", "sk"], after, |i| {
                Ok(DueSubscription {
                    account_id: get_s(i, "account_id")?.to_string(),
                    subscription_id: get_s(i, "subscription_id")?.to_string(),
                    next_close_at: get_s(i, "due_at")?
                        .parse()
                        .map_err(|e| StoreError::Corrupt(format!("attribute `due_at`: {e}")))?,
                })
            })
            .await
        })
    }

    fn put_catalog<'a>(&'a self, catalog: &'a CatalogData) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            let mut item = Item::new();
            item.insert("pk".into(), s("CATALOG"));
            item.insert("sk".into(), s("CURRENT"));
            item.insert("doc".into(), to_doc(catalog));
            self.put(item).await
        })
    }

    fn catalog(&self) -> BoxFuture<'_, Result<CatalogData, StoreError>> {
        Box::pin(async move {
            match self.get("CATALOG", "CURRENT").await? {
                Some(item) => from_doc(&item),
                None => Ok(CatalogData::default()),
            }
        })
    }

    fn invoice<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<Invoice>, StoreError>> {
        Box::pin(async move {
            self.get(&account_pk(account_id), &format!("INV#{invoice_id}"))
                .await?
                .map(|i| Self::parse_invoice(&i))
                .transpose()
        })
    }

    fn invoices_since<'a>(
        &'a self,
        account_id: &'a str,
        subscription_id: &'a str,
        since: DateTime<Utc>,
    ) -> BoxFuture<'a, Result<Vec<Invoice>, StoreError>> {
        Box::pin(async move {
            let lo = format!(
                "INV#{}",
                crate::domain::billing::invoice_id(account_id, subscription_id, since)
            );
            let sep = crate::domain::billing::close::INVOICE_ACCOUNT_SEPARATOR;
            let hi = format!("INV#inv_{account_id}{sep}{subscription_id}_~");
            let items = self.query_range(&account_pk(account_id), &lo, &hi).await?;
            let mut out = Vec::new();
            for item in &items {
                if get_s(item, "subscription_id")? != subscription_id {
                    continue;
                }
                let inv = Self::parse_invoice(item)?;
                if inv.period.start >= since {
                    out.push(inv);
                }
            }
            out.sort_by_key(|i| i.period.start);
            Ok(out)
        })
    }

    fn credit_notes<'a>(
        &'a self,
        account_id: &'a str,
    ) -> BoxFuture<'a, Result<Vec<CreditNoteDoc>, StoreError>> {
        Box::pin(async move {
            let items = self.query_range(&account_pk(account_id), "CN#", "CN#~").await?;
            items.iter().map(from_doc).collect()
        })
    }

    fn commit_close<'a>(&'a self, c: &'a CloseCommit) -> BoxFuture<'a, Result<CloseOutcome, StoreError>> {
        Box::pin(async move {
            if c.invoice.status != InvoiceStatus::Draft {
                return Err(StoreError::Corrupt("a close writes a draft".into()));
            }
            let mut attempt = 0;
            loop {
                let items = self.close_items(c)?;
                let err = match self
                    .client
                    .transact_write_items()
                    .set_transact_items(Some(items))
                    .send()
                    .await
                {
                    Ok(_) => return Ok(CloseOutcome::Committed(Box::new(c.invoice.clone()))),
                    Err(err) => err,
                };
                let retry = match err.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(tc)) => {
                        let failed: Vec<bool> = tc
                            .cancellation_reasons()
                            .iter()
                            .map(|r| r.code() == Some("ConditionalCheckFailed"))
                            .collect();
                        if failed.is_empty() {
                            // No reasons (some endpoints): look.
                            if self.closed_elsewhere(c).await? {
                                return Ok(CloseOutcome::AlreadyClosed);
                            }
                            let acct = self.account(&c.invoice.account_id).await?;
                            if acct.is_none_or(|a| a.credit_balance != c.expected_balance) {
                                return Err(StoreError::Conflict("the credit balance changed".into()));
                            }
                            if self.statement_taken(&c.invoice).await? {
                                return Err(statement_collision(&c.invoice));
                            }
                            true
                        } else if failed[0]
                            || failed[1]
                            || failed[3]
                            || failed.iter().skip(4).take(c.credit_notes.len()).any(|f| *f)
                        {
                            return Ok(CloseOutcome::AlreadyClosed);
                        } else if failed[2] {
                            return Err(StoreError::Conflict("the credit balance changed".into()));
                        } else if failed.iter().skip(4 + c.credit_notes.len()).any(|f| *f) {
                            return Err(statement_collision(&c.invoice));
                        } else {
                            // A conflict with a concurrent transaction on one of the items.
                            true
                        }
                    }
                    Some(e) if super::is_transient(e) => true,
                    _ => false,
                };
                attempt += 1;
                if !retry || attempt >= MAX_ATTEMPTS {
                    let text = DisplayErrorContext(&err).to_string();
                    return Err(if retry {
                        StoreError::Conflict(text)
                    } else {
                        StoreError::Unavailable(text)
                    });
                }
                backoff(attempt.min(4)).await;
            }
        })
    }

    fn commit_upfront<'a>(&'a self, inv: &'a Invoice) -> BoxFuture<'a, Result<UpfrontOutcome, StoreError>> {
        Box::pin(async move {
            if inv.status != InvoiceStatus::Draft {
                return Err(StoreError::Corrupt("an upfront is written as a draft".into()));
            }
            let mut attempt = 0;
            loop {
                let items = self.upfront_items(inv)?;
                let err = match self
                    .client
                    .transact_write_items()
                    .set_transact_items(Some(items))
                    .send()
                    .await
                {
                    Ok(_) => return Ok(UpfrontOutcome::Committed(Box::new(inv.clone()))),
                    Err(err) => err,
                };
                let retry = match err.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(tc)) => {
                        let failed = tc
                            .cancellation_reasons()
                            .iter()
                            .take(2)
                            .any(|r| r.code() == Some("ConditionalCheckFailed"));
                        if failed || self.invoice(&inv.account_id, &inv.invoice_id).await?.is_some() {
                            return Ok(UpfrontOutcome::AlreadyIssued);
                        }
                        true
                    }
                    Some(e) if super::is_transient(e) => true,
                    _ => false,
                };
                attempt += 1;
                if !retry || attempt >= MAX_ATTEMPTS {
                    return Err(StoreError::Unavailable(DisplayErrorContext(&err).to_string()));
                }
                backoff(attempt.min(4)).await;
            }
        })
    }

    fn drop_upfront<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            self.client
                .update_item()
                .table_name(&self.table)
                .key("pk", s(account_pk(account_id)))
                .key("sk", s(format!("UPFRONT#{invoice_id}")))
                .update_expression("REMOVE due_pk, due_at")
                .condition_expression("attribute_exists(pk)")
                .send()
                .await
                .map(|_| ())
                .or_else(|e| match e.as_service_error() {
                    Some(e) if e.is_conditional_check_failed_exception() => Ok(()),
                    _ => Err(unavailable(e)),
                })
        })
    }

    fn number_drafts<'a>(&'a self, drafts: &'a [Invoice]) -> BoxFuture<'a, Result<Vec<Invoice>, StoreError>> {
        Box::pin(async move {
            let mut out = Vec::new();
            for (prefix, batch) in numbering_batches(drafts) {
                out.extend(self.number_batch(prefix, &batch).await?);
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
            let pk = format!("PENDING#{shard}");
            let query = self
                .client
                .query()
                .table_name(&self.table)
                .key_condition_expression("pk = :pk")
                .filter_expression("since <= :until")
                .expression_attribute_values(":pk", s(&pk))
                .expression_attribute_values(":until", s(instant(until)))
                .consistent_read(true)
                .limit(limit.clamp(1, 1000) as i32);
            query_page(query, &[("pk", &pk)], &["sk"], after, Self::parse_pending).await
        })
    }

    fn pending_invoice<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<PendingInvoice>, StoreError>> {
        Box::pin(async move {
            let (pk, sk) = Self::pending_key(account_id, invoice_id);
            self.get(&pk, &sk)
                .await?
                .map(|i| Self::parse_pending(&i))
                .transpose()
        })
    }

    fn clear_pending<'a>(&'a self, done: &'a [PendingInvoice]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            use aws_sdk_dynamodb::types::{DeleteRequest, WriteRequest};
            let mut requests = Vec::with_capacity(done.len());
            for p in done {
                let (pk, sk) = Self::pending_key(&p.account_id, &p.invoice_id);
                let delete = DeleteRequest::builder()
                    .key("pk", s(pk))
                    .key("sk", s(sk))
                    .build()
                    .map_err(build_error)?;
                requests.push(WriteRequest::builder().delete_request(delete).build());
            }
            self.batch_write(requests, "pending markers").await
        })
    }

    fn last_number<'a>(&'a self, issuer_prefix: &'a str) -> BoxFuture<'a, Result<u64, StoreError>> {
        Box::pin(async move {
            match self.get(&format!("ISSUER#{issuer_prefix}"), "COUNTER").await? {
                Some(item) => get_u64(&item, "seq"),
                None => Ok(0),
            }
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
            let open_pk = format!("OPEN#{shard}");
            let q = self
                .client
                .query()
                .table_name(&self.table)
                .index_name("OpenIndex")
                .key_condition_expression("open_pk = :p AND open_due <= :due")
                .expression_attribute_values(":p", s(&open_pk))
                .expression_attribute_values(":due", s(format!("{due_by}#~")))
                .limit(limit.clamp(1, 1000) as i32);
            // The cursor is `open_due|pk|sk` of the last item read.
            query_page(
                q,
                &[("open_pk", &open_pk)],
                &["open_due", "pk", "sk"],
                after,
                |i| {
                    let due = get_s(i, "open_due")?;
                    Ok(OpenInvoice {
                        account_id: get_s(i, "account_id")?.to_string(),
                        invoice_id: get_s(i, "invoice_id")?.to_string(),
                        due_date: due
                            .split('#')
                            .next()
                            .unwrap_or_default()
                            .parse()
                            .map_err(|e| StoreError::Corrupt(format!("attribute `open_due`: {e}")))?,
                    })
                },
            )
            .await
        })
    }

    fn mark_past_due<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let [pk, sk] = Self::invoice_key(account_id, invoice_id);
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(pk.0, pk.1)
                .key(sk.0, sk.1)
                .update_expression("SET #s = :past_due")
                .condition_expression("#s = :open")
                .expression_attribute_names("#s", "status")
                .expression_attribute_values(":past_due", s(InvoiceStatus::PastDue.as_str()))
                .expression_attribute_values(":open", s(InvoiceStatus::Open.as_str()))
                .send()
                .await;
            match result {
                Ok(_) => Ok(true),
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|e| e.is_conditional_check_failed_exception()) =>
                {
                    Ok(false)
                }
                Err(e) => Err(unavailable(e)),
            }
        })
    }

    fn charge_late_fee<'a>(
        &'a self,
        account_id: &'a str,
        charge: &'a LateFeeCharge,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let mut fee = Item::new();
            fee.insert("pk".into(), s(account_pk(account_id)));
            fee.insert("sk".into(), s(format!("FEE#{}", charge.key)));
            fee.insert("doc".into(), to_doc(charge));
            fee.insert("amount".into(), n(charge.amount.amount));
            // Until the fee's `InvoiceOverdue` is published (`fee_announced`).
            fee.insert(UNANNOUNCED.into(), AttributeValue::Bool(true));
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(fee))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(build_error)?;
            let [pk, sk] = Self::invoice_key(account_id, &charge.invoice_id);
            let update = Update::builder()
                .table_name(&self.table)
                .key(pk.0, pk.1)
                .key(sk.0, sk.1)
                .update_expression("ADD outstanding :fee")
                .condition_expression("attribute_exists(pk)")
                .expression_attribute_values(":fee", n(charge.amount.amount))
                .build()
                .map_err(build_error)?;
            let (lpk, lsk) = unannounced_key(account_id, &charge.key);
            let listed = Put::builder()
                .table_name(&self.table)
                .item("pk", s(lpk))
                .item("sk", s(lsk))
                .item("account_id", s(account_id))
                .item("doc", to_doc(charge))
                .build()
                .map_err(build_error)?;
            let items = vec![
                TransactWriteItem::builder().put(put).build(),
                TransactWriteItem::builder().update(update).build(),
                TransactWriteItem::builder().put(listed).build(),
            ];
            for attempt in 0..5u32 {
                match self.transact(items.clone()).await? {
                    None => return Ok(true),
                    Some(failed) if failed.first() == Some(&true) => return Ok(false),
                    Some(failed) if failed.get(1) == Some(&true) => {
                        return Err(StoreError::Corrupt(format!("no invoice {}", charge.invoice_id)))
                    }
                    Some(_) => {
                        if self
                            .get(&account_pk(account_id), &format!("FEE#{}", charge.key))
                            .await?
                            .is_some()
                        {
                            return Ok(false);
                        }
                        backoff(attempt).await;
                    }
                }
            }
            Err(StoreError::Conflict(format!(
                "late fee {} could not be written",
                charge.key
            )))
        })
    }

    fn unannounced_fee<'a>(
        &'a self,
        account_id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<Option<LateFeeCharge>, StoreError>> {
        Box::pin(async move {
            match self.get(&account_pk(account_id), &format!("FEE#{key}")).await? {
                Some(item) if item.contains_key(UNANNOUNCED) => from_doc(&item).map(Some),
                _ => Ok(None),
            }
        })
    }

    fn fee_announced<'a>(
        &'a self,
        account_id: &'a str,
        key: &'a str,
    ) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            // The flag first: stopping between the two leaves the fee listed and announced,
            // which the next check only delists.
            self.remove_attribute(account_pk(account_id), format!("FEE#{key}"), UNANNOUNCED)
                .await?;
            let (pk, sk) = unannounced_key(account_id, key);
            self.delete(pk, sk).await.map(|_| ())
        })
    }

    fn unannounced_fees(
        &self,
        shard: u32,
    ) -> BoxFuture<'_, Result<Vec<(String, LateFeeCharge)>, StoreError>> {
        Box::pin(async move {
            let items = self
                .query_range(&format!("FEES_UNANNOUNCED#{shard}"), "!", "~")
                .await?;
            items
                .iter()
                .map(|i| Ok((get_s(i, "account_id")?.to_string(), from_doc(i)?)))
                .collect()
        })
    }

    fn record_payment<'a>(
        &'a self,
        result: &'a PaymentResult,
        succeeded: bool,
    ) -> BoxFuture<'a, Result<PaymentOutcome, StoreError>> {
        Box::pin(async move {
            let pk_value = account_pk(&result.account_id);
            let pay_sk = format!("PAY#{}", result.event_id);
            if self.get(&pk_value, &pay_sk).await?.is_some() {
                return Ok(PaymentOutcome::Duplicate);
            }
            let Some(invoice) = self.invoice(&result.account_id, &result.invoice_id).await? else {
                return Ok(PaymentOutcome::Rejected(PaymentMismatch::UnknownInvoice {
                    account_id: result.account_id.clone(),
                    invoice_id: result.invoice_id.clone(),
                }));
            };
            if let Err(m) = check_payment(result, &invoice, succeeded) {
                return Ok(PaymentOutcome::Rejected(m));
            }
            let mut record = Item::new();
            record.insert("pk".into(), s(&pk_value));
            record.insert("sk".into(), s(&pay_sk));
            record.insert("doc".into(), to_doc(result));
            record.insert("succeeded".into(), AttributeValue::Bool(succeeded));
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(record))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(build_error)?;
            let mut items = vec![TransactWriteItem::builder().put(put).build()];
            let change = if succeeded {
                apply_payment(invoice.status, invoice.outstanding, result.amount)
            } else {
                None
            };
            if let Some((status, outstanding)) = change {
                let [pk, sk] = Self::invoice_key(&result.account_id, &result.invoice_id);
                let mut update = Update::builder()
                    .table_name(&self.table)
                    .key(pk.0, pk.1)
                    .key(sk.0, sk.1)
                    .condition_expression("#s = :read_status AND outstanding = :read_outstanding")
                    .expression_attribute_names("#s", "status")
                    .expression_attribute_values(":read_status", s(invoice.status.as_str()))
                    .expression_attribute_values(":read_outstanding", n(invoice.outstanding))
                    .expression_attribute_values(":status", s(status.as_str()))
                    .expression_attribute_values(":outstanding", n(outstanding));
                update = if outstanding.is_zero() {
                    update.update_expression(
                        "SET #s = :status, outstanding = :outstanding REMOVE open_pk, open_due",
                    )
                } else {
                    update.update_expression("SET #s = :status, outstanding = :outstanding")
                };
                items.push(
                    TransactWriteItem::builder()
                        .update(update.build().map_err(build_error)?)
                        .build(),
                );
            }
            match self.transact(items).await? {
                None => Ok(match change {
                    Some((status, outstanding)) => PaymentOutcome::Applied { status, outstanding },
                    None => PaymentOutcome::Recorded {
                        status: invoice.status,
                    },
                }),
                Some(failed) if failed.first() == Some(&true) => Ok(PaymentOutcome::Duplicate),
                Some(_) => Err(StoreError::Conflict(format!(
                    "invoice {} changed while applying payment {}",
                    result.invoice_id, result.event_id
                ))),
            }
        })
    }
}
