//! Issued invoices on the billing table: an account's invoices and credit notes page by page,
//! voiding, manual credit notes, provider statement entries, and every invoice issued in a time
//! range (the `IssuedIndex`). Item layout: `dynamo_billing`.
//!
//! Every write is one conditional transaction on the invoice as it was read (its status,
//! outstanding amount and `credited`), so a concurrent payment, void or credit note makes it fail
//! ([`StoreError::Conflict`] or `false`): read again and decide again.

use super::attrs::{get_decimal, get_opt_s, get_s, n, s, Item};
use super::dynamo::{build_error, query_all, query_each, query_page};
use super::dynamo_billing::{account_pk, from_doc, instant, to_doc};
use crate::domain::billing::ledger::{CreditEffect, InvoiceFilter};
use crate::domain::billing::{CreditNoteDoc, Invoice, InvoiceStatus};
use crate::ports::billing::due_shard;
use crate::ports::issued::IssuedInvoices;
use crate::ports::issued::{CreditBasis, CreditNoteOutcome, StatementEntry};
use crate::ports::{Page, StoreError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use rust_decimal::Decimal;
use std::ops::ControlFlow;

use super::DynamoBillingStore;
use futures::future::BoxFuture;

/// Partitions of `IssuedIndex` per month: spreads a month's closes over several partitions.
pub const ISSUED_SHARDS: u32 = 4;

/// `ISSUED#<yyyy-mm>#<shard>` of an invoice.
pub fn issued_pk(issued_at: DateTime<Utc>, invoice_id: &str) -> String {
    format!(
        "ISSUED#{}#{}",
        issued_at.format("%Y-%m"),
        due_shard(invoice_id, ISSUED_SHARDS)
    )
}

const PAGE: i32 = 100;

impl DynamoBillingStore {
    /// One query page of `pk` with `sk` in `[lo, hi]`, after `start` (an `sk`).
    async fn query_page(
        &self,
        pk: &str,
        lo: &str,
        hi: &str,
        start: Option<&str>,
        limit: i32,
    ) -> Result<(Vec<Item>, Option<String>), StoreError> {
        let q = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", s(pk))
            .expression_attribute_values(":lo", s(lo))
            .expression_attribute_values(":hi", s(hi))
            .consistent_read(true)
            .limit(limit);
        let page = query_page(q, &[("pk", pk)], &["sk"], start, |i| Ok(i.clone())).await?;
        Ok((page.items, page.next))
    }

    /// Pages through `pk`'s items in `[lo, hi]` after `after`, keeping those `keep` accepts, until
    /// `limit` are kept. The cursor is the `sk` of the last item kept, so items a filter drops
    /// never end a page early and none is skipped.
    async fn filtered_page<T>(
        &self,
        pk: &str,
        (lo, hi): (&str, &str),
        after: Option<&str>,
        limit: usize,
        mut keep: impl FnMut(&Item) -> Result<Option<T>, StoreError>,
    ) -> Result<Page<T>, StoreError> {
        let mut items = Vec::new();
        // A cursor outside the range (the range changed between pages) starts at its edge.
        if after.is_some_and(|a| a >= hi) {
            return Ok(Page { items, next: None });
        }
        let mut start = after.filter(|a| *a >= lo).map(str::to_string);
        loop {
            let (page, next) = self.query_page(pk, lo, hi, start.as_deref(), PAGE).await?;
            for item in &page {
                if let Some(v) = keep(item)? {
                    items.push(v);
                    if items.len() == limit {
                        return Ok(Page {
                            items,
                            next: Some(get_s(item, "sk")?.to_string()),
                        });
                    }
                }
            }
            match next {
                Some(n) => start = Some(n),
                None => return Ok(Page { items, next: None }),
            }
        }
    }

    /// Conditions an update on the invoice being as read: status, outstanding, no manual credit.
    fn invoice_as_read(
        &self,
        inv: &Invoice,
        credited: Option<Decimal>,
    ) -> aws_sdk_dynamodb::types::builders::UpdateBuilder {
        let [pk, sk] = Self::invoice_key(&inv.account_id, &inv.invoice_id);
        let mut u = Update::builder()
            .table_name(&self.table)
            .key(pk.0, pk.1)
            .key(sk.0, sk.1)
            .expression_attribute_names("#s", "status")
            .expression_attribute_values(":read_status", s(inv.status.as_str()))
            .expression_attribute_values(":read_outstanding", n(inv.outstanding));
        let base = "#s = :read_status AND outstanding = :read_outstanding";
        u = match credited {
            None => u.condition_expression(format!("{base} AND attribute_not_exists(credited)")),
            Some(c) => u
                .condition_expression(format!("{base} AND credited = :read_credited"))
                .expression_attribute_values(":read_credited", n(c)),
        };
        u
    }

    fn balance_add(&self, account_id: &str, amount: Decimal) -> Result<TransactWriteItem, StoreError> {
        let u = Update::builder()
            .table_name(&self.table)
            .key("pk", s(account_pk(account_id)))
            .key("sk", s("ACCOUNT"))
            .update_expression("ADD balance :amount")
            .condition_expression("attribute_exists(pk)")
            .expression_attribute_values(":amount", n(amount))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(u).build())
    }

    fn statement_entry(item: &Item) -> Result<StatementEntry, StoreError> {
        let sk = get_s(item, "sk")?;
        let end = sk
            .strip_prefix("STMT#")
            .and_then(|r| r.split('#').next())
            .and_then(|t| t.parse::<DateTime<Utc>>().ok())
            .ok_or_else(|| StoreError::Corrupt(format!("statement key {sk}")))?;
        Ok(StatementEntry {
            invoice_id: get_s(item, "invoice_id")?.to_string(),
            account_id: get_s(item, "account_id")?.to_string(),
            period_end: end,
            statement: from_doc(item)?,
            voided: matches!(item.get("voided"), Some(AttributeValue::Bool(true))),
        })
    }

    /// The query of `IssuedIndex` partition `pk` for `lo <= issued_at <= hi`.
    fn issued_query(&self, pk: &str, lo: &str, hi: &str) -> QueryFluentBuilder {
        self.client
            .query()
            .table_name(&self.table)
            .index_name("IssuedIndex")
            .key_condition_expression("issued_pk = :p AND issued_at BETWEEN :lo AND :hi")
            .expression_attribute_values(":p", s(pk))
            .expression_attribute_values(":lo", s(lo))
            .expression_attribute_values(":hi", s(hi))
    }

    /// Up to `limit` invoices of one `IssuedIndex` partition issued in `[from, to)` that `filter`
    /// accepts, after the position `after` (`issued_at` and `sk`), in (`issued_at`, `sk`) order.
    async fn issued_matches(
        &self,
        pk: &str,
        (from, to): (&str, &str),
        after: Option<(&str, &str)>,
        filter: &InvoiceFilter,
        limit: usize,
    ) -> Result<Vec<(String, String, Invoice)>, StoreError> {
        let mut out = Vec::new();
        let lo = match after {
            Some((t, _)) if t > from => t,
            _ => from,
        };
        query_each(self.issued_query(pk, lo, to).limit(PAGE), |items| {
            for item in &items {
                let at = get_s(item, "issued_at")?;
                let sk = get_s(item, "sk")?;
                if at >= to || after.is_some_and(|(t, k)| (at, sk) <= (t, k)) {
                    continue;
                }
                let inv = Self::parse_invoice(item)?;
                if filter.matches(&inv) {
                    out.push((at.to_string(), sk.to_string(), inv));
                    if out.len() == limit {
                        return Ok(ControlFlow::Break(()));
                    }
                }
            }
            Ok(ControlFlow::Continue(()))
        })
        .await?;
        Ok(out)
    }
}

impl IssuedInvoices for DynamoBillingStore {
    /// An account's invoices matching `filter`, by invoice id (each subscription's in period
    /// order), `limit` at a time after the cursor `after`.
    fn list_invoices<'a>(
        &'a self,
        account_id: &'a str,
        filter: &'a InvoiceFilter,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<Invoice>, StoreError>> {
        Box::pin(async move {
            self.filtered_page(&account_pk(account_id), ("INV#", "INV#~"), after, limit, |item| {
                let inv = Self::parse_invoice(item)?;
                Ok(filter.matches(&inv).then_some(inv))
            })
            .await
        })
    }

    /// An account's credit notes (those against `invoice_id` only, when given), by id.
    fn list_credit_notes<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: Option<&'a str>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<CreditNoteDoc>, StoreError>> {
        Box::pin(async move {
            self.filtered_page(&account_pk(account_id), ("CN#", "CN#~"), after, limit, |item| {
                let note: CreditNoteDoc = from_doc(item)?;
                Ok(invoice_id
                    .is_none_or(|id| note.original_invoice_id == id)
                    .then_some(note))
            })
            .await
        })
    }

    /// The total of the credit notes against an invoice (found by closes and issued by hand).
    fn credited<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<Decimal, StoreError>> {
        Box::pin(async move {
            let items = self.query_range(&account_pk(account_id), "CN#", "CN#~").await?;
            let mut sum = Decimal::ZERO;
            for item in &items {
                let note: CreditNoteDoc = from_doc(item)?;
                if note.original_invoice_id == invoice_id {
                    sum += note.amount;
                }
            }
            Ok(sum)
        })
    }

    fn credit_note<'a>(
        &'a self,
        account_id: &'a str,
        credit_note_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<CreditNoteDoc>, StoreError>> {
        Box::pin(async move {
            self.get(&account_pk(account_id), &format!("CN#{credit_note_id}"))
                .await?
                .map(|i| from_doc(&i))
                .transpose()
        })
    }

    /// Whether a successful payment was applied to the invoice.
    fn payments_applied<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let items = self.query_range(&account_pk(account_id), "PAY#", "PAY#~").await?;
            for item in &items {
                let paid = matches!(item.get("succeeded"), Some(AttributeValue::Bool(true)));
                let doc: crate::domain::billing::events::PaymentResult = from_doc(item)?;
                if paid && doc.invoice_id == invoice_id && doc.amount > Decimal::ZERO {
                    return Ok(true);
                }
            }
            Ok(false)
        })
    }

    /// Whether the payment result `event_id` was recorded for the account.
    fn payment_recorded<'a>(
        &'a self,
        account_id: &'a str,
        event_id: &'a str,
    ) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            Ok(self
                .get(&account_pk(account_id), &format!("PAY#{event_id}"))
                .await?
                .is_some())
        })
    }

    /// An invoice with its `credited` attribute (the manual credit notes so far), read together:
    /// what a credit note is conditioned on.
    fn invoice_for_credit<'a>(
        &'a self,
        account_id: &'a str,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<CreditBasis>, StoreError>> {
        Box::pin(async move {
            let Some(item) = self
                .get(&account_pk(account_id), &format!("INV#{invoice_id}"))
                .await?
            else {
                return Ok(None);
            };
            let credited = if item.contains_key("credited") {
                Some(get_decimal(&item, "credited")?)
            } else {
                None
            };
            Ok(Some((Self::parse_invoice(&item)?, credited)))
        })
    }

    /// Voids `inv` as read (the caller checked [`crate::domain::billing::ledger::check_void`]): status
    /// `void`, nothing outstanding, out of the open index, the credit it consumed back on the
    /// account's balance, its provider statement entries marked `voided`; all or nothing.
    /// `false`: the invoice changed since it was read.
    fn void_invoice<'a>(&'a self, inv: &'a Invoice) -> BoxFuture<'a, Result<bool, StoreError>> {
        Box::pin(async move {
            let update = self
                .invoice_as_read(inv, None)
                .update_expression("SET #s = :void, outstanding = :zero REMOVE open_pk, open_due")
                .expression_attribute_values(":void", s(InvoiceStatus::Void.as_str()))
                .expression_attribute_values(":zero", n(Decimal::ZERO))
                .build()
                .map_err(build_error)?;
            let mut items = vec![TransactWriteItem::builder().update(update).build()];
            if inv.credit_applied > Decimal::ZERO {
                items.push(self.balance_add(&inv.account_id, inv.credit_applied)?);
            }
            for st in &inv.statements.statements {
                let u = Update::builder()
                    .table_name(&self.table)
                    .key("pk", s(format!("PROV#{}", st.provider_id)))
                    .key(
                        "sk",
                        s(format!("STMT#{}#{}", instant(inv.period.end), inv.invoice_id)),
                    )
                    .update_expression("SET voided = :t")
                    .condition_expression("attribute_exists(pk)")
                    .expression_attribute_values(":t", AttributeValue::Bool(true))
                    .build()
                    .map_err(build_error)?;
                items.push(TransactWriteItem::builder().update(u).build());
            }
            if items.len() > 100 {
                return Err(StoreError::Corrupt(format!(
                    "voiding {} needs {} writes, more than one transaction holds",
                    inv.invoice_id,
                    items.len()
                )));
            }
            Ok(self.transact(items).await?.is_none())
        })
    }

    /// Issues a manual credit note once per id: the note, the invoice's new status and
    /// outstanding amount (conditional on the invoice and its `credited` as read with
    /// [`Self::invoice_for_credit`] before the credit notes were summed) and the rest on the
    /// account's credit balance, all or nothing.
    fn issue_credit_note<'a>(
        &'a self,
        inv: &'a Invoice,
        credited: Option<Decimal>,
        effect: &'a CreditEffect,
    ) -> BoxFuture<'a, Result<CreditNoteOutcome, StoreError>> {
        Box::pin(async move {
            let note = &effect.note;
            let mut item = Item::new();
            item.insert("pk".into(), s(account_pk(&note.account_id)));
            item.insert("sk".into(), s(format!("CN#{}", note.credit_note_id)));
            item.insert("doc".into(), to_doc(note));
            item.insert("amount".into(), n(note.amount));
            item.insert("original_invoice_id".into(), s(&note.original_invoice_id));
            let put = Put::builder()
                .table_name(&self.table)
                .set_item(Some(item))
                .condition_expression("attribute_not_exists(pk)")
                .build()
                .map_err(build_error)?;
            let mut update = self
                .invoice_as_read(inv, credited)
                .expression_attribute_values(":status", s(effect.status.as_str()))
                .expression_attribute_values(":outstanding", n(effect.outstanding))
                .expression_attribute_values(":credited", n(credited.unwrap_or(Decimal::ZERO) + note.amount));
            update = if effect.outstanding.is_zero() {
                update.update_expression(
                "SET #s = :status, outstanding = :outstanding, credited = :credited REMOVE open_pk, open_due",
            )
            } else {
                update.update_expression("SET #s = :status, outstanding = :outstanding, credited = :credited")
            };
            let mut items = vec![
                TransactWriteItem::builder().put(put).build(),
                TransactWriteItem::builder()
                    .update(update.build().map_err(build_error)?)
                    .build(),
            ];
            if effect.to_balance > Decimal::ZERO {
                items.push(self.balance_add(&inv.account_id, effect.to_balance)?);
            }
            match self.transact(items).await? {
                None => Ok(CreditNoteOutcome::Created),
                Some(failed) if failed.first() == Some(&true) => {
                    match self.credit_note(&inv.account_id, &note.credit_note_id).await? {
                        Some(existing) => Ok(CreditNoteOutcome::Exists(Box::new(existing))),
                        None => Ok(CreditNoteOutcome::Conflict),
                    }
                }
                Some(_) => Ok(CreditNoteOutcome::Conflict),
            }
        })
    }

    /// A provider's statement entries for periods ending in `[from, to)`, oldest first.
    fn list_statements<'a>(
        &'a self,
        provider_id: &'a str,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<StatementEntry>, StoreError>> {
        Box::pin(async move {
            let lo = format!("STMT#{}", instant(from));
            let hi = format!("STMT#{}", instant(to));
            self.filtered_page(&format!("PROV#{provider_id}"), (&lo, &hi), after, limit, |item| {
                let e = Self::statement_entry(item)?;
                Ok((e.period_end < to).then_some(e))
            })
            .await
        })
    }

    /// One statement entry: the provider's entry for the invoice of the period ending at
    /// `period_end`.
    fn statement_entry_of<'a>(
        &'a self,
        provider_id: &'a str,
        period_end: DateTime<Utc>,
        invoice_id: &'a str,
    ) -> BoxFuture<'a, Result<Option<StatementEntry>, StoreError>> {
        Box::pin(async move {
            self.get(
                &format!("PROV#{provider_id}"),
                &format!("STMT#{}#{}", instant(period_end), invoice_id),
            )
            .await?
            .map(|i| Self::statement_entry(&i))
            .transpose()
        })
    }

    /// Invoices of every account issued in `[from, to)` that `filter` accepts, by issue time then
    /// key, `limit` at a time after the cursor `after` (`<issued_at>|<sk>` of the last one
    /// returned). Each month's `IssuedIndex` shards are merged.
    fn list_all_invoices<'a>(
        &'a self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        filter: &'a InvoiceFilter,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<Invoice>, StoreError>> {
        Box::pin(async move {
            let after = match after {
                None => None,
                Some(a) => Some(
                    a.split_once('|')
                        .ok_or_else(|| StoreError::Corrupt(format!("bad invoice cursor {a:?}")))?,
                ),
            };
            let (lo, hi) = (instant(from), instant(to));
            let start = match after {
                Some((t, _)) => t
                    .parse::<DateTime<Utc>>()
                    .map_err(|_| StoreError::Corrupt(format!("bad invoice cursor time {t:?}")))?
                    .max(from),
                None => from,
            };
            let mut month = NaiveDate::from_ymd_opt(start.year(), start.month(), 1)
                .ok_or_else(|| StoreError::Corrupt(format!("no month for {start}")))?;
            let mut found: Vec<(String, String, Invoice)> = Vec::new();
            while Utc.from_utc_datetime(&month.and_hms_opt(0, 0, 0).unwrap_or_default()) < to {
                for shard in 0..ISSUED_SHARDS {
                    let pk = format!("ISSUED#{}#{shard}", month.format("%Y-%m"));
                    found.extend(self.issued_matches(&pk, (&lo, &hi), after, filter, limit).await?);
                }
                if found.len() >= limit {
                    break;
                }
                month = month
                    .checked_add_months(chrono::Months::new(1))
                    .ok_or_else(|| StoreError::Corrupt("month overflow".into()))?;
            }
            found.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
            let more = found.len() > limit;
            found.truncate(limit);
            let next = match found.last() {
                Some((t, k, _)) if more || found.len() == limit => Some(format!("{t}|{k}")),
                _ => None,
            };
            Ok(Page {
                items: found.into_iter().map(|(_, _, i)| i).collect(),
                next,
            })
        })
    }

    /// Every invoice issued in `[from, to)`, from `IssuedIndex` (each month's shards), by issue
    /// time within a shard.
    fn invoices_issued(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Vec<Invoice>, StoreError>> {
        Box::pin(async move {
            let mut out = Vec::new();
            let mut month = NaiveDate::from_ymd_opt(from.year(), from.month(), 1)
                .ok_or_else(|| StoreError::Corrupt(format!("no month for {from}")))?;
            while Utc.from_utc_datetime(&month.and_hms_opt(0, 0, 0).unwrap_or_default()) < to {
                for shard in 0..ISSUED_SHARDS {
                    let pk = format!("ISSUED#{}#{shard}", month.format("%Y-%m"));
                    let query = self.issued_query(&pk, &instant(from), &instant(to));
                    for item in query_all(query).await? {
                        if get_opt_s(&item, "issued_at").is_some_and(|t| t < instant(to)) {
                            out.push(Self::parse_invoice(&item)?);
                        }
                    }
                }
                month = month
                    .checked_add_months(chrono::Months::new(1))
                    .ok_or_else(|| StoreError::Corrupt("month overflow".into()))?;
            }
            Ok(out)
        })
    }
}
