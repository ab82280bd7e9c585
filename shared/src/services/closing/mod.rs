//! The close service: the glue between the ports and [`close_period`], shared by the
//! `cycle-close` scheduler and the `close-worker` function (and the tests and benchmarks).
//!
//! * [`enqueue_due`]: queries the due index, shard by shard, and sends one [`CloseRequest`] per
//!   subscription whose period has ended.
//! * [`Closer::draft_subscription`]: closes every ended period of one subscription, each in one
//!   conditional write that leaves a draft and a pending marker.
//! * [`Closer::finish`]: numbers drafts (one conditional write per issuer and up to 99 drafts),
//!   publishes their events and the late-usage credit notes' (at least once), then removes their
//!   markers. The close worker finishes each SQS batch's closes together; [`sweep_pending`] (run
//!   by the scheduler) finishes what a crashed or timed-out worker left.
//! * [`Closer::close_subscription`]: both, for one request.

use crate::domain::billing::events::{credit_note_event, finalized_events};
use crate::domain::billing::upfront::{
    refund_note, refund_note_id, reservation_end, upfront_invoice, upfront_invoice_id, upfront_purchases,
    upfronts_due, UpfrontInput,
};
use crate::domain::billing::{
    close_period, invoice_id, Account, BillingPeriod, BillingSubscription, CloseError, CloseInput,
    CreditNoteDoc, Invoice, InvoiceKind, InvoiceLine, InvoiceStatus, PriorPeriod,
};
use crate::domain::fx::{CurrencyPair, ExchangeRate};
use crate::domain::pricing::{Catalog, CatalogData, OnCancel, Reservation, UsageRow, ValidationErrors};
use crate::domain::usage::Granularity;
use crate::ports::billing::{
    BillingStore, CloseCommit, CloseOutcome, EventPublisher, PendingInvoice, UpfrontOutcome, DUE_SHARDS,
};
use crate::ports::billing::{CloseQueue, CloseRequest};
use crate::ports::rates::RateStore;
use crate::ports::usage::UsageStore;
use crate::ports::StoreError;
use chrono::{DateTime, TimeDelta, Utc};

/// Sends a close request for every subscription due at `now`; returns how many.
pub async fn enqueue_due(
    store: &dyn BillingStore,
    queue: &dyn CloseQueue,
    now: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let shards = (0..DUE_SHARDS).map(|shard| async move {
        let mut sent = 0;
        let mut after: Option<String> = None;
        loop {
            let page = store.due_subscriptions(shard, now, after.as_deref(), 500).await?;
            let requests: Vec<CloseRequest> = page
                .items
                .iter()
                .map(|d| CloseRequest {
                    account_id: d.account_id.clone(),
                    subscription_id: d.subscription_id.clone(),
                    period_end: d.next_close_at,
                })
                .collect();
            queue.send(&requests).await?;
            sent += requests.len();
            match page.next {
                Some(n) => after = Some(n),
                None => return Ok::<usize, StoreError>(sent),
            }
        }
    });
    let counts = futures::future::join_all(shards).await;
    counts.into_iter().sum()
}

/// Why a subscription could not be closed.
#[derive(Debug, thiserror::Error)]
pub enum CloseFailure {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("exchange rates: {0}")]
    Rates(StoreError),
    #[error(transparent)]
    Close(#[from] CloseError),
    #[error("the price books are invalid: {0}")]
    Catalog(ValidationErrors),
    #[error("{0} does not exist")]
    NotFound(String),
}

impl CloseFailure {
    /// Worth retrying as is (storage, a missing exchange rate, a race).
    pub fn is_retryable(&self) -> bool {
        match self {
            // A corrupt item stays corrupt: retrying it only delays its dead letter.
            CloseFailure::Store(StoreError::Corrupt(_)) => false,
            CloseFailure::Store(_) | CloseFailure::Rates(_) => true,
            CloseFailure::Close(e) => e.is_retryable(),
            _ => false,
        }
    }
}

/// What one request did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CloseReport {
    /// Invoices this call wrote: drafts after [`Closer::draft_subscription`], finalized (numbered,
    /// open) after [`Closer::close_subscription`].
    pub committed: Vec<Invoice>,
    /// Periods found already closed (duplicate or retried requests).
    pub already_closed: usize,
    /// Events published (including republished ones).
    pub events_published: usize,
    /// Closes left to finish ([`Closer::finish`]): those this call wrote, and the requested
    /// period's when its pending marker is still there (a retry after a crash).
    pub to_finish: Vec<Finalization>,
}

/// The price books, tax rates and fees as read by a close, kept for the next requests of the
/// same batch.
#[derive(Default)]
pub struct LoadedCatalog(Option<(Catalog, CatalogData)>);

impl LoadedCatalog {
    /// The catalog, read from the store and compiled the first time.
    pub(crate) async fn get(
        &mut self,
        billing: &dyn BillingStore,
    ) -> Result<&(Catalog, CatalogData), CloseFailure> {
        if self.0.is_none() {
            let data = billing.catalog().await?;
            let cat = Catalog::new(data.books.clone()).map_err(CloseFailure::Catalog)?;
            self.0 = Some((cat, data));
        }
        self.0
            .as_ref()
            .ok_or_else(|| CloseFailure::NotFound("the price books".into()))
    }
}

/// Earlier invoices of a subscription still open to late usage, oldest first, and the later
/// invoices and credit notes that may have adjusted them.
#[derive(Debug, Clone, Default)]
pub(crate) struct History {
    pub earlier: Vec<Invoice>,
    pub later: Vec<Invoice>,
    pub notes: Vec<CreditNoteDoc>,
}

impl History {
    /// Where the usage to read starts: the first earlier period's start, or `period`'s.
    pub fn from(&self, period: BillingPeriod) -> DateTime<Utc> {
        self.earlier.first().map_or(period.start, |i| i.period.start)
    }

    /// The earlier periods with their usage (`rows[i]` is `earlier[i]`'s).
    pub fn prior<'a>(&'a self, rows: &'a [Vec<UsageRow>]) -> Vec<PriorPeriod<'a>> {
        self.earlier
            .iter()
            .zip(rows)
            .map(|(inv, usage)| PriorPeriod {
                invoice: inv,
                adjusted: adjusted_lines(&inv.invoice_id, &self.later, &self.notes),
                usage,
            })
            .collect()
    }
}

/// The rows with a window starting in `[start, end)`.
fn rows_in(rows: &[UsageRow], start: DateTime<Utc>, end: DateTime<Utc>) -> Vec<UsageRow> {
    rows.iter()
        .filter(|r| start <= r.window_start && r.window_start < end)
        .cloned()
        .collect()
}

/// A written close whose invoice may still be a draft and whose events may not be published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finalization {
    pub invoice: Invoice,
    /// The credit notes the close issued for late usage (their `CreditNoteIssued` events go out
    /// with the invoice's).
    pub credit_notes: Vec<CreditNoteDoc>,
}

/// What [`Closer::finish`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FinishReport {
    /// The invoices as finalized (numbered by this call or by another one).
    pub finalized: Vec<Invoice>,
    /// Drafts this call numbered.
    pub numbered: usize,
    pub events_published: usize,
}

/// Settings of the close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CloseSettings {
    /// How far back before a period's start closed periods are re-checked for late usage:
    /// at least the ingestion lateness window plus the future skew.
    pub late_usage_lookback: TimeDelta,
    /// Closes of one subscription per request, at most (catching up after an outage).
    pub max_periods_per_request: usize,
}

impl Default for CloseSettings {
    fn default() -> Self {
        CloseSettings {
            late_usage_lookback: TimeDelta::days(7) + TimeDelta::minutes(5),
            max_periods_per_request: 100,
        }
    }
}

/// Attempts of one period's close when the account's balance changed concurrently.
const MAX_CONFLICTS: u32 = 5;

/// The close, over its ports.
pub struct Closer<'a> {
    pub billing: &'a dyn BillingStore,
    pub usage: &'a dyn UsageStore,
    pub rates: &'a dyn RateStore,
    pub publisher: &'a dyn EventPublisher,
    pub settings: CloseSettings,
}

impl Closer<'_> {
    /// Closes every period of the subscription that has ended by `now` and finishes them:
    /// [`Closer::draft_subscription`] then [`Closer::finish`].
    pub async fn close_subscription(
        &self,
        request: &CloseRequest,
        now: DateTime<Utc>,
    ) -> Result<CloseReport, CloseFailure> {
        let mut report = self.draft_subscription(request, now).await?;
        let finished = self.finish(std::mem::take(&mut report.to_finish)).await?;
        for inv in &mut report.committed {
            if let Some(f) = finished.finalized.iter().find(|f| f.invoice_id == inv.invoice_id) {
                *inv = f.clone();
            }
        }
        report.events_published += finished.events_published;
        Ok(report)
    }

    /// Closes every period of the subscription that has ended by `now`, oldest first, each in
    /// one conditional write of a draft (no number yet). The drafts, and the requested period's
    /// invoice when its finalization was left unfinished, are in `to_finish`.
    pub async fn draft_subscription(
        &self,
        request: &CloseRequest,
        now: DateTime<Utc>,
    ) -> Result<CloseReport, CloseFailure> {
        self.draft_with(request, now, &mut LoadedCatalog::default()).await
    }

    /// [`Closer::draft_subscription`] with the price books read once for several requests (the
    /// close worker's batch: one read of the catalog item per batch, not per close).
    ///
    /// Per ended period, oldest first: read the subscription, draft its next period
    /// ([`Closer::draft_next`]) and commit it; a race with a balance change recomputes it. Then
    /// the requested period's close is picked up if a crashed call left it unfinished.
    pub async fn draft_with(
        &self,
        request: &CloseRequest,
        now: DateTime<Utc>,
        loaded: &mut LoadedCatalog,
    ) -> Result<CloseReport, CloseFailure> {
        let mut report = CloseReport::default();
        let mut conflicts = 0;
        let first = self.read_subscription(request).await?;
        self.draft_upfronts(&first, now, loaded, &mut report).await?;
        // The subscription as last read (its schedule never changes).
        let mut last_read = None;
        let mut unread = Some(first);
        for _ in 0..self.settings.max_periods_per_request {
            let sub = match unread.take() {
                Some(sub) => sub,
                None => self.read_subscription(request).await?,
            };
            last_read = Some(sub.clone());
            let Some(next) = sub.next_close_at.filter(|t| *t <= now) else {
                break;
            };
            let commit = self.draft_next(&sub, next, now, loaded).await?;
            match self.billing.commit_close(&commit).await {
                Ok(CloseOutcome::Committed(invoice)) => {
                    tracing::debug!(invoice_id = %invoice.invoice_id, total = %invoice.total, "invoice drafted");
                    report.to_finish.push(Finalization {
                        invoice: (*invoice).clone(),
                        credit_notes: commit.credit_notes,
                    });
                    report.committed.push(*invoice);
                    // The subscription's next close is known: no need to read it again to
                    // learn that nothing else has ended.
                    if commit.next_close.is_none_or(|t| t > now) {
                        break;
                    }
                }
                Ok(CloseOutcome::AlreadyClosed) => report.already_closed += 1,
                Err(StoreError::Conflict(why)) if conflicts < MAX_CONFLICTS => {
                    conflicts += 1;
                    tracing::debug!(%why, "close raced with a balance change; recomputing");
                }
                Err(e) => return Err(e.into()),
            }
        }
        if let Some(sub) = last_read {
            if let Some(f) = self.requested_unfinished(request, &sub, &report).await? {
                report.to_finish.push(f);
            }
        }
        Ok(report)
    }

    async fn read_subscription(&self, request: &CloseRequest) -> Result<BillingSubscription, CloseFailure> {
        self.billing
            .subscription(&request.account_id, &request.subscription_id)
            .await?
            .ok_or_else(|| CloseFailure::NotFound(format!("subscription {}", request.subscription_id)))
    }

    /// The close of the subscription's next period (ending at `next`), ready to commit: its
    /// account, the price books, the earlier periods still open to late usage and the usage,
    /// the exchange rate, then [`close_period`].
    pub(crate) async fn draft_next(
        &self,
        sub: &BillingSubscription,
        next: DateTime<Utc>,
        now: DateTime<Utc>,
        loaded: &mut LoadedCatalog,
    ) -> Result<CloseCommit, CloseFailure> {
        let period = sub
            .period_to_close()
            .map_err(CloseError::from)?
            .ok_or_else(|| CloseFailure::NotFound(format!("the next period of {}", sub.subscription_id)))?;
        let account = self
            .billing
            .account(&sub.account_id)
            .await?
            .ok_or_else(|| CloseFailure::NotFound(format!("account {}", sub.account_id)))?;
        let (cat, data) = loaded.get(self.billing).await?;
        let history = self.history(&account, sub, period).await?;
        let rows = usage_rows(self.usage, &account.account_id, history.from(period), period.end).await?;
        let current_rows = rows_in(&rows, period.start, period.end);
        let prior_rows: Vec<Vec<UsageRow>> = history
            .earlier
            .iter()
            .map(|i| rows_in(&rows, i.period.start, i.period.end))
            .collect();
        let rate = self.exchange_rate(&account, cat, period.end).await?;
        let id = invoice_id(&sub.account_id, &sub.subscription_id, period.start);
        let refunds = self.refunds(&account, sub, period, &id, now).await?;
        let input = CloseInput {
            account: &account,
            subscription: sub,
            period,
            catalog: cat,
            taxes: &data.taxes,
            fees: &data.fees,
            usage: &current_rows,
            prior: history.prior(&prior_rows),
            rate: rate.as_ref(),
            now,
            refunds,
        };
        let out = close_period(&input)?;
        Ok(CloseCommit {
            invoice: out.invoice,
            credit_notes: out.credit_notes,
            expected_next_close: next,
            next_close: sub.next_close_after(period).map_err(CloseError::from)?,
            expected_balance: account.credit_balance,
            new_balance: out.new_credit_balance,
        })
    }

    /// Earlier closed periods still open to late usage (from the lookback before `period`), and
    /// the later invoices and credit notes that already adjusted them.
    pub(crate) async fn history(
        &self,
        account: &Account,
        sub: &BillingSubscription,
        period: BillingPeriod,
    ) -> Result<History, CloseFailure> {
        let lookback_from = (period.start - self.settings.late_usage_lookback).max(sub.schedule.anchor);
        let since = sub
            .schedule
            .period_containing(lookback_from)
            .map_err(CloseError::from)?
            .start;
        let earlier: Vec<Invoice> = self
            .billing
            .invoices_since(&account.account_id, &sub.subscription_id, since)
            .await?
            .into_iter()
            .filter(|i| i.kind == InvoiceKind::Period && i.period.end <= period.start)
            .collect();
        let Some(first) = earlier.first() else {
            return Ok(History::default());
        };
        let later = self
            .billing
            .invoices_since(&account.account_id, &sub.subscription_id, first.period.end)
            .await?;
        let notes = self.billing.credit_notes(&account.account_id).await?;
        Ok(History {
            earlier,
            later,
            notes,
        })
    }

    /// The rate converting the books' currency into the account's in force at `at` (the end of
    /// a period, the start of a reservation's term; stored either way round), or `None` when
    /// they are the same currency.
    pub(crate) async fn exchange_rate(
        &self,
        account: &Account,
        cat: &Catalog,
        at: DateTime<Utc>,
    ) -> Result<Option<ExchangeRate>, CloseFailure> {
        if account.currency == cat.currency() {
            return Ok(None);
        }
        let pair = CurrencyPair::new(cat.currency(), account.currency);
        for p in [pair, CurrencyPair::new(account.currency, cat.currency())] {
            if let Some(r) = self.rates.rate_at(p, at).await.map_err(CloseFailure::Rates)? {
                return Ok(Some(r));
            }
        }
        Err(CloseError::MissingRate { pair, at }.into())
    }

    /// Drafts the upfront invoice of every reservation bought by `now` and not invoiced yet
    /// (each in one conditional write: retried and concurrent requests write it once), and
    /// drops the purchases that ended before their term started. The drafts go to `to_finish`.
    pub(crate) async fn draft_upfronts(
        &self,
        sub: &BillingSubscription,
        now: DateTime<Utc>,
        loaded: &mut LoadedCatalog,
        report: &mut CloseReport,
    ) -> Result<(), CloseFailure> {
        for (_, r) in upfront_purchases(sub) {
            let never = reservation_end(sub, r).is_some_and(|end| end <= r.term_start);
            if never && r.term_start <= now {
                let id = upfront_invoice_id(&sub.account_id, &sub.subscription_id, r);
                self.billing.drop_upfront(&sub.account_id, &id).await?;
            }
        }
        let due = upfronts_due(sub, now);
        if due.is_empty() {
            return Ok(());
        }
        let account = self
            .billing
            .account(&sub.account_id)
            .await?
            .ok_or_else(|| CloseFailure::NotFound(format!("account {}", sub.account_id)))?;
        let (cat, data) = loaded.get(self.billing).await?;
        for (plan, r) in due {
            let id = upfront_invoice_id(&sub.account_id, &sub.subscription_id, r);
            if self.billing.invoice(&account.account_id, &id).await?.is_some() {
                continue;
            }
            let rate = self.exchange_rate(&account, cat, r.term_start).await?;
            let invoice = upfront_invoice(&UpfrontInput {
                account: &account,
                subscription: sub,
                plan,
                reservation: r,
                catalog: cat,
                taxes: &data.taxes,
                fees: &data.fees,
                payouts: &data.upfront_payouts,
                rate: rate.as_ref(),
                now,
            })?;
            match self.billing.commit_upfront(&invoice).await? {
                UpfrontOutcome::Committed(invoice) => {
                    tracing::debug!(invoice_id = %invoice.invoice_id, total = %invoice.total, "upfront invoice drafted");
                    report.to_finish.push(Finalization {
                        invoice: (*invoice).clone(),
                        credit_notes: Vec::new(),
                    });
                    report.committed.push(*invoice);
                }
                UpfrontOutcome::AlreadyIssued => report.already_closed += 1,
            }
        }
        Ok(())
    }

    /// The refunds issued with the close `id` of `period`: for each reservation configured to
    /// be refunded that left the subscription by the period's end, a credit note for the
    /// months of its term not started ([`refund_note`]), once (none if its note exists).
    pub(crate) async fn refunds(
        &self,
        account: &Account,
        sub: &BillingSubscription,
        period: BillingPeriod,
        id: &str,
        now: DateTime<Utc>,
    ) -> Result<Vec<CreditNoteDoc>, CloseFailure> {
        let ended: Vec<(&Reservation, DateTime<Utc>)> = upfront_purchases(sub)
            .into_iter()
            .filter(|(_, r)| r.on_cancel == OnCancel::CreditNote)
            .filter_map(|(_, r)| Some((r, reservation_end(sub, r)?)))
            .filter(|(r, end)| *end > r.term_start && *end <= period.end)
            .collect();
        if ended.is_empty() {
            return Ok(Vec::new());
        }
        let notes = self.billing.credit_notes(&account.account_id).await?;
        let mut out = Vec::new();
        for (r, end) in ended {
            let upfront_id = upfront_invoice_id(&sub.account_id, &sub.subscription_id, r);
            if notes
                .iter()
                .any(|n| n.credit_note_id == refund_note_id(&upfront_id))
            {
                continue;
            }
            if let Some(upfront) = self.billing.invoice(&account.account_id, &upfront_id).await? {
                out.extend(refund_note(r, &upfront, end, id, now));
            }
        }
        Ok(out)
    }

    /// The requested period's close, in case the call that wrote it did not finish it (its
    /// pending marker is still there) and this call did not write it.
    async fn requested_unfinished(
        &self,
        request: &CloseRequest,
        sub: &BillingSubscription,
        report: &CloseReport,
    ) -> Result<Option<Finalization>, CloseFailure> {
        if request.period_end <= sub.schedule.anchor {
            return Ok(None);
        }
        let period = sub
            .schedule
            .period_containing(request.period_end - TimeDelta::nanoseconds(1))
            .map_err(CloseError::from)?;
        let id = invoice_id(&sub.account_id, &sub.subscription_id, period.start);
        if report.committed.iter().any(|i| i.invoice_id == id) {
            return Ok(None);
        }
        match self.billing.pending_invoice(&request.account_id, &id).await? {
            Some(pending) => Ok(self.unfinished(&pending).await?),
            None => Ok(None),
        }
    }

    /// The finishing half of the close, on the same ports.
    pub fn finisher(&self) -> Finisher<'_> {
        Finisher {
            billing: self.billing,
            publisher: self.publisher,
        }
    }

    /// See [`Finisher::finish`].
    pub async fn finish(&self, work: Vec<Finalization>) -> Result<FinishReport, CloseFailure> {
        self.finisher().finish(work).await
    }

    async fn unfinished(&self, pending: &PendingInvoice) -> Result<Option<Finalization>, StoreError> {
        self.finisher().unfinished(pending).await
    }
}

/// Numbering and publishing of written closes: what the close worker does after each batch and
/// the scheduler's sweep does for closes left pending. Needs only the billing store and the
/// event publisher.
pub struct Finisher<'a> {
    pub billing: &'a dyn BillingStore,
    pub publisher: &'a dyn EventPublisher,
}

impl Finisher<'_> {
    /// The close a pending marker stands for: its invoice and the credit notes issued with it
    /// (`None` if the invoice does not exist: nothing to finish).
    pub async fn unfinished(&self, pending: &PendingInvoice) -> Result<Option<Finalization>, StoreError> {
        let Some(invoice) = self
            .billing
            .invoice(&pending.account_id, &pending.invoice_id)
            .await?
        else {
            return Ok(None);
        };
        let credit_notes = self
            .billing
            .credit_notes(&pending.account_id)
            .await?
            .into_iter()
            .filter(|n| n.issued_with == pending.invoice_id)
            .collect();
        Ok(Some(Finalization {
            invoice,
            credit_notes,
        }))
    }

    /// Finishes closes: numbers the drafts among them (per issuer, one conditional write per up
    /// to 99 drafts, in the order given), publishes `InvoiceFinalized` (and `PaymentRequested`)
    /// for every invoice and `CreditNoteIssued` for the credit notes issued with it, then removes
    /// their pending markers. Safe to run twice and concurrently: a draft numbered by another
    /// call keeps its number, and events keep their ids.
    pub async fn finish(&self, mut work: Vec<Finalization>) -> Result<FinishReport, CloseFailure> {
        let mut report = FinishReport::default();
        // One close may come twice (a duplicate message in the same batch): finish it once.
        let mut seen = std::collections::HashSet::new();
        work.retain(|f| seen.insert((f.invoice.account_id.clone(), f.invoice.invoice_id.clone())));
        if work.is_empty() {
            return Ok(report);
        }
        let drafts: Vec<Invoice> = work
            .iter()
            .filter(|f| f.invoice.status == InvoiceStatus::Draft)
            .map(|f| f.invoice.clone())
            .collect();
        let mut numbered: std::collections::HashMap<(String, String), Invoice> = if drafts.is_empty() {
            Default::default()
        } else {
            self.billing
                .number_drafts(&drafts)
                .await?
                .into_iter()
                .map(|i| ((i.account_id.clone(), i.invoice_id.clone()), i))
                .collect()
        };
        report.numbered = numbered.len();
        let mut events = Vec::new();
        for f in &work {
            let key = (f.invoice.account_id.clone(), f.invoice.invoice_id.clone());
            let invoice = if let Some(n) = numbered.remove(&key) {
                n
            } else if f.invoice.status == InvoiceStatus::Draft {
                // Numbered by another call first: read what it gave.
                let stored = self
                    .billing
                    .invoice(&f.invoice.account_id, &f.invoice.invoice_id)
                    .await?
                    .ok_or_else(|| CloseFailure::NotFound(format!("invoice {}", f.invoice.invoice_id)))?;
                if stored.status == InvoiceStatus::Draft {
                    return Err(StoreError::Conflict(format!(
                        "invoice {} is still a draft",
                        stored.invoice_id
                    ))
                    .into());
                }
                stored
            } else {
                f.invoice.clone()
            };
            events.extend(finalized_events(&invoice));
            events.extend(f.credit_notes.iter().map(credit_note_event));
            tracing::info!(
                invoice_id = %invoice.invoice_id,
                number = invoice.number.as_deref().unwrap_or(""),
                total = %invoice.total,
                currency = invoice.currency.code(),
                "invoice finalized"
            );
            report.finalized.push(invoice);
        }
        self.publisher.publish(&events).await?;
        report.events_published = events.len();
        let markers: Vec<PendingInvoice> = work.iter().map(|f| PendingInvoice::of(&f.invoice)).collect();
        self.billing.clear_pending(&markers).await?;
        Ok(report)
    }
}

/// Finishes the closes whose pending markers were written at or before `until` (closes a
/// crashed or timed-out worker left unnumbered or unpublished): the scheduler's sweep. Returns
/// how many it finished.
pub async fn sweep_pending(finisher: &Finisher<'_>, until: DateTime<Utc>) -> Result<usize, CloseFailure> {
    let mut finished = 0;
    for shard in 0..DUE_SHARDS {
        let mut after: Option<String> = None;
        loop {
            let page = finisher
                .billing
                .pending_invoices(shard, until, after.as_deref(), 500)
                .await?;
            let mut work = Vec::new();
            let mut gone = Vec::new();
            for p in &page.items {
                match finisher.unfinished(p).await? {
                    Some(f) => work.push(f),
                    None => gone.push(p.clone()),
                }
            }
            // Oldest first, so numbers follow the order the drafts were written in.
            work.sort_by(|a, b| {
                (a.invoice.issued_at, &a.invoice.invoice_id)
                    .cmp(&(b.invoice.issued_at, &b.invoice.invoice_id))
            });
            finished += finisher.finish(work).await?.finalized.len();
            finisher.billing.clear_pending(&gone).await?;
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
    }
    Ok(finished)
}

/// The account's hourly aggregates with window start in `[from, to)`, as rating rows: what the
/// close rates, and what estimates of the open period rate.
pub async fn usage_rows(
    usage: &dyn UsageStore,
    account_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<UsageRow>, StoreError> {
    let mut rows = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = usage
            .aggregates_page(
                account_id,
                Granularity::Hour,
                from,
                to,
                None,
                after.as_deref(),
                1000,
            )
            .await?;
        rows.extend(
            page.items
                .iter()
                .filter(|a| a.window_start < to)
                .map(|a| UsageRow::from_aggregate(&a.provider_id, a)),
        );
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(rows),
        }
    }
}

/// Lines of later invoices and credit notes that adjusted invoice `original`.
fn adjusted_lines<'a>(
    original: &str,
    later: &'a [Invoice],
    notes: &'a [CreditNoteDoc],
) -> Vec<&'a InvoiceLine> {
    later
        .iter()
        .flat_map(|i| i.lines.iter())
        .chain(notes.iter().flat_map(|n| n.lines.iter()))
        .filter(|l| {
            l.adjusts
                .as_ref()
                .is_some_and(|a| a.original_invoice_id == original)
        })
        .collect()
}

#[cfg(test)]
mod tests;
