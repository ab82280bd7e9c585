//! After the close: the scheduled overdue check and the payment results, over the ports.
//!
//! * [`run_overdue_check`]: every invoice with something outstanding and a due date passed is
//!   checked with [`check_overdue`] in the account's timezone; a late `open` invoice becomes
//!   `past_due`, and the late fee of the current fee period is charged once (its key is written
//!   only if new), whatever the number of runs. `InvoiceOverdue` is published when something
//!   changed.
//! * [`apply_payment_result`]: `PaymentSucceeded` lowers the outstanding amount (to `paid` at
//!   zero), `PaymentFailed` is recorded; each event id is applied once.

use crate::billing::events::{InvoiceOverdue, PaymentResult};
use crate::billing::{check_overdue, BillingEvent, InvoiceDue, OverdueError};
use crate::money::Money;
use crate::store::billing::{BillingStore, EventPublisher, PaymentOutcome, DUE_SHARDS};
use crate::store::StoreError;
use chrono::{DateTime, Days, Utc};

/// What an overdue run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OverdueSummary {
    pub checked: usize,
    pub marked_past_due: usize,
    pub fees_charged: usize,
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
pub async fn run_overdue_check<B: BillingStore, P: EventPublisher>(
    store: &B,
    publisher: &P,
    now: DateTime<Utc>,
) -> Result<OverdueSummary, CollectionError> {
    let mut summary = OverdueSummary::default();
    // A day ahead of UTC covers every timezone; `check_overdue` decides in the account's.
    let due_by = now
        .date_naive()
        .checked_add_days(Days::new(1))
        .unwrap_or(now.date_naive());
    for shard in 0..DUE_SHARDS {
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
                if marked || charged {
                    let period = check.fee.as_ref().map_or(0, |f| f.period_index);
                    let detail = InvoiceOverdue {
                        event_id: format!("invoice-overdue#{}#{period}", invoice.invoice_id),
                        invoice_id: invoice.invoice_id.clone(),
                        account_id: invoice.account_id.clone(),
                        currency: invoice.currency.code().to_string(),
                        outstanding: invoice.outstanding
                            + check
                                .fee
                                .as_ref()
                                .filter(|_| charged)
                                .map_or(Default::default(), |f| f.amount.amount),
                        late_fee: check.fee.as_ref().filter(|_| charged).map(|f| f.amount.amount),
                        fee_period: period,
                    };
                    publisher
                        .publish(&[BillingEvent {
                            source: None,
                            detail_type: "InvoiceOverdue".into(),
                            detail: serde_json::to_value(&detail).expect("event serializes"),
                        }])
                        .await?;
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

/// Attempts when the invoice changed between read and write.
const MAX_CONFLICTS: u32 = 5;

/// Applies a `PaymentSucceeded` (`succeeded`) or `PaymentFailed` result, once per event id.
pub async fn apply_payment_result<B: BillingStore>(
    store: &B,
    result: &PaymentResult,
    succeeded: bool,
) -> Result<PaymentOutcome, CollectionError> {
    if let Some(invoice) = store.invoice(&result.account_id, &result.invoice_id).await? {
        if invoice.currency.code() != result.currency {
            return Err(CollectionError::Invalid(format!(
                "payment {} is in {}, invoice {} in {}",
                result.event_id,
                result.currency,
                invoice.invoice_id,
                invoice.currency.code()
            )));
        }
    }
    let mut attempt = 0;
    loop {
        match store.record_payment(result, succeeded).await {
            Err(StoreError::Conflict(_)) if attempt < MAX_CONFLICTS => attempt += 1,
            other => return Ok(other?),
        }
    }
}
