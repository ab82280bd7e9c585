//! The [`CreditStore`] on the billing table (items listed in [`super::dynamo_billing`]):
//!
//! | item | `pk` | `sk` | attributes |
//! |---|---|---|---|
//! | ledger state | `ACCT#<account>` | `CREDIT#STATE` | `version` (N), `entries` (N: the last `seq`), `doc`: grants, holds, applied operations ([`LedgerSnapshot`] as JSON) |
//! | ledger entry | `ACCT#<account>` | `CREDIT#ENTRY#<seq, 20 digits>` | `seq` (N), `doc`: the entry as JSON |
//!
//! A save is one `TransactWriteItems`: put the state if its `version` is still the one loaded
//! (`attribute_not_exists(pk)` for the first), and put the new entries. The version condition
//! is what makes the entries safe to put: no other save can have written them while it holds.
//! A save of more entries than one transaction takes (100 items, the state among them) writes
//! the first ones in earlier transactions, each with a condition check of the same version on
//! the state item, and the state last: until the state says `entries = n`, entries after `n`
//! are not part of the ledger, and listings read only up to the state's count. Such an entry
//! left behind by a save that then lost its race is overwritten by the next save of that
//! `seq`, which is why entries are put without `attribute_not_exists`.
//!
//! A transaction cancelled by another request on its items (`TransactionConflict`) or by
//! throttling is sent again with backoff ([`DynamoBillingStore::transact`]); a failed version
//! condition is [`StoreError::Conflict`]: the service loads the ledger again and decides again.
//!
//! The state item holds every grant, hold and applied operation id of the account, so it is
//! bounded by DynamoDB's 400 KB item size: a few thousand operations. Compacting closed holds
//! and old operation ids out of it is not built yet (`docs/credits.md`).

use super::attrs::{get_u64, n, s};
use super::dynamo::{build_error, get_item, unavailable};
use super::dynamo_billing::{account_pk, from_doc, to_doc, DynamoBillingStore};
use crate::domain::credits::{CreditLedger, LedgerEntry, LedgerSnapshot};
use crate::ports::credits::{entry_cursor, parse_entry_cursor, CreditStore, LoadedLedger, MAX_ENTRY_PAGE};
use crate::ports::{Page, StoreError};
use aws_sdk_dynamodb::types::{AttributeValue, ConditionCheck, Put, TransactWriteItem};
use futures::future::BoxFuture;

const STATE_SK: &str = "CREDIT#STATE";

/// Items one transaction takes (the state item, or its condition check, is one of them).
const TRANSACTION_ITEMS: usize = 100;

fn entry_sk(seq: u64) -> String {
    format!("CREDIT#ENTRY#{seq:020}")
}

impl DynamoBillingStore {
    /// The condition that the state item still has `version` (none yet for version 0).
    fn version_condition(version: u64) -> (&'static str, Option<AttributeValue>) {
        if version == 0 {
            ("attribute_not_exists(pk)", None)
        } else {
            ("version = :v", Some(n(version)))
        }
    }

    fn entry_put(&self, account_id: &str, entry: &LedgerEntry) -> Result<TransactWriteItem, StoreError> {
        let put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(account_pk(account_id)))
            .item("sk", s(entry_sk(entry.seq)))
            .item("seq", n(entry.seq))
            .item("doc", to_doc(entry))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn state_put(&self, ledger: &CreditLedger, version: u64) -> Result<TransactWriteItem, StoreError> {
        let (condition, value) = Self::version_condition(version);
        let put = Put::builder()
            .table_name(&self.table)
            .item("pk", s(account_pk(ledger.account_id())))
            .item("sk", s(STATE_SK))
            .item("version", n(version + 1))
            .item("entries", n(ledger.entry_count()))
            .item("doc", to_doc(&ledger.snapshot()))
            .condition_expression(condition)
            .set_expression_attribute_values(value.map(|v| [(":v".to_string(), v)].into()))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    fn state_check(&self, account_id: &str, version: u64) -> Result<TransactWriteItem, StoreError> {
        let (condition, value) = Self::version_condition(version);
        let check = ConditionCheck::builder()
            .table_name(&self.table)
            .key("pk", s(account_pk(account_id)))
            .key("sk", s(STATE_SK))
            .condition_expression(condition)
            .set_expression_attribute_values(value.map(|v| [(":v".to_string(), v)].into()))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().condition_check(check).build())
    }

    /// Sends one transaction whose first item is the state's put or check.
    async fn send_versioned(
        &self,
        items: Vec<TransactWriteItem>,
        account_id: &str,
    ) -> Result<(), StoreError> {
        match self.transact(items).await? {
            None => Ok(()),
            Some(failed) if failed.first() == Some(&true) => Err(StoreError::Conflict(format!(
                "credit ledger of {account_id} changed since it was loaded"
            ))),
            Some(_) => Err(StoreError::Unavailable(format!(
                "credit ledger of {account_id}: the transaction kept being cancelled"
            ))),
        }
    }

    async fn save_ledger(&self, ledger: &CreditLedger, version: u64) -> Result<(), StoreError> {
        let account_id = ledger.account_id();
        let entries = ledger.entries();
        let per_transaction = TRANSACTION_ITEMS - 1;
        // The last chunk goes with the state; the ones before it with a check of the version.
        let last = entries.len().saturating_sub(1) / per_transaction * per_transaction;
        for chunk in entries[..last].chunks(per_transaction) {
            let mut items = vec![self.state_check(account_id, version)?];
            for e in chunk {
                items.push(self.entry_put(account_id, e)?);
            }
            self.send_versioned(items, account_id).await?;
        }
        let mut items = vec![self.state_put(ledger, version)?];
        for e in &entries[last..] {
            items.push(self.entry_put(account_id, e)?);
        }
        self.send_versioned(items, account_id).await
    }

    async fn load_ledger(&self, account_id: &str) -> Result<(LoadedLedger, u64), StoreError> {
        let Some(item) = get_item(&self.client, &self.table, &account_pk(account_id), STATE_SK).await? else {
            let ledger = CreditLedger::new(account_id);
            return Ok((LoadedLedger { ledger, version: 0 }, 0));
        };
        let snapshot: LedgerSnapshot = from_doc(&item)?;
        let count = get_u64(&item, "entries")?;
        if snapshot.account_id() != account_id || snapshot.entry_count() != count {
            return Err(StoreError::Corrupt(format!(
                "credit state of {account_id} does not match its item"
            )));
        }
        let version = get_u64(&item, "version")?;
        let ledger = CreditLedger::restore(snapshot);
        Ok((LoadedLedger { ledger, version }, count))
    }

    async fn entry_page(
        &self,
        account_id: &str,
        after: Option<&str>,
        limit: usize,
    ) -> Result<Page<LedgerEntry>, StoreError> {
        let after = after.map(parse_entry_cursor).transpose()?.unwrap_or(0);
        let (_, count) = self.load_ledger(account_id).await?;
        if after >= count {
            return Ok(Page {
                items: Vec::new(),
                next: None,
            });
        }
        let limit = limit.clamp(1, MAX_ENTRY_PAGE);
        let out = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("pk = :pk AND sk BETWEEN :lo AND :hi")
            .expression_attribute_values(":pk", s(account_pk(account_id)))
            .expression_attribute_values(":lo", s(entry_sk(after + 1)))
            .expression_attribute_values(":hi", s(entry_sk(count)))
            .limit(i32::try_from(limit).unwrap_or(i32::MAX))
            .consistent_read(true)
            .send()
            .await
            .map_err(unavailable)?;
        let items = out
            .items()
            .iter()
            .map(from_doc::<LedgerEntry>)
            .collect::<Result<Vec<_>, _>>()?;
        let next = items
            .last()
            .filter(|e| e.seq < count)
            .map(|e| entry_cursor(e.seq));
        Ok(Page { items, next })
    }
}

impl CreditStore for DynamoBillingStore {
    fn load<'a>(&'a self, account_id: &'a str) -> BoxFuture<'a, Result<LoadedLedger, StoreError>> {
        Box::pin(async move { Ok(self.load_ledger(account_id).await?.0) })
    }

    fn save<'a>(&'a self, ledger: &'a CreditLedger, version: u64) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(self.save_ledger(ledger, version))
    }

    fn entries<'a>(
        &'a self,
        account_id: &'a str,
        after: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<Page<LedgerEntry>, StoreError>> {
        Box::pin(self.entry_page(account_id, after, limit))
    }
}
