//! Draw-down of ingested usage from an account's prepaid credit, after usage-ingest committed a
//! batch.
//!
//! For each account of the batch that has a credit ledger, each billing period the batch's
//! usage falls in is rated to date exactly as its close will rate it (the period-to-date
//! estimate's loading and rating, [`crate::services::account_estimate`]); each metered charge
//! (per provider and meter) has what it grew by since the last draw drawn from the free
//! balance ([`CreditLedger::draw_usage`]). The draw-down id carries the to-date total, so a
//! replayed batch draws nothing more, and a draw-down that failed is caught up by the account's
//! next batch (its delta includes the missed one).
//!
//! Usage is committed before any of this: a failed draw-down never fails or loses usage.

use crate::domain::billing::BillingPeriod;
use crate::domain::credits::{usage_charges, Balance, CreditError, CreditLedger, LedgerEntry, PeriodUsage};
use crate::domain::estimate::rate_period;
use crate::domain::money::Currency;
use crate::domain::pricing::RatingError;
use crate::ports::billing::BillingStore;
use crate::ports::credits::{CreditStore, LoadedLedger};
use crate::ports::usage::UsageStore;
use crate::ports::StoreError;
use crate::services::account_estimate::{AccountEstimator, EstimateFailure};
use crate::services::credits::{Pause, MAX_ATTEMPTS};
use chrono::{DateTime, Utc};
use std::collections::{BTreeMap, BTreeSet};

/// Why an account's usage was not drawn down (its next batch catches up).
#[derive(Debug, thiserror::Error)]
pub enum DrawFailure {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error(transparent)]
    Estimate(#[from] EstimateFailure),
    #[error(transparent)]
    Rating(#[from] RatingError),
    #[error(transparent)]
    Refused(#[from] CreditError),
}

/// What one period's draw-down did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeriodDraw {
    pub account_id: String,
    pub period: BillingPeriod,
    pub currency: Currency,
    /// The entries written (none when nothing grew: a replay).
    pub entries: Vec<LedgerEntry>,
    /// What the period has drawn in all.
    pub drawn: rust_decimal::Decimal,
    /// The account's balance in the period's currency after the draw.
    pub balance: Balance,
}

/// The draw-down over its ports.
pub struct UsageDrawDown<'a> {
    pub credits: &'a dyn CreditStore,
    pub billing: &'a dyn BillingStore,
    pub usage: &'a dyn UsageStore,
    pub pause: Pause,
    /// Spend control after each draw ([`control`]); none: the draw-down alone.
    pub control: Option<SpendControl<'a>>,
}

impl UsageDrawDown<'_> {
    /// Draws down, for each account, the periods holding its instants (the usage times of the
    /// batch's events). An account that fails is logged and left to its next batch; the others
    /// are drawn all the same.
    pub async fn draw_batch(
        &self,
        usage: &BTreeMap<String, BTreeSet<DateTime<Utc>>>,
        now: DateTime<Utc>,
    ) -> (Vec<PeriodDraw>, Vec<(String, DrawFailure)>) {
        let (mut draws, mut failed) = (Vec::new(), Vec::new());
        for (account_id, instants) in usage {
            match self.draw_account(account_id, instants, now).await {
                Ok(d) => draws.extend(d),
                Err(e) => {
                    tracing::warn!(account_id = %account_id, error = %e, "usage not drawn down; the account's next batch catches up");
                    failed.push((account_id.clone(), e));
                }
            }
        }
        (draws, failed)
    }

    /// Draws down the periods of one account holding `instants`; nothing for an account
    /// without a credit ledger.
    pub async fn draw_account(
        &self,
        account_id: &str,
        instants: &BTreeSet<DateTime<Utc>>,
        now: DateTime<Utc>,
    ) -> Result<Vec<PeriodDraw>, DrawFailure> {
        let mut first = Some(self.credits.load(account_id).await?);
        if first.as_ref().is_some_and(|l| l.version == 0) {
            return Ok(Vec::new());
        }
        let estimator = AccountEstimator {
            billing: self.billing,
            usage: self.usage,
        };
        let mut out: Vec<PeriodDraw> = Vec::new();
        for at in instants {
            if out.iter().any(|d| d.period.start <= *at && *at < d.period.end) {
                continue;
            }
            let loaded = match estimator.load(account_id, *at, None).await {
                Ok(l) => l,
                Err(e) if e.is_not_found() => {
                    tracing::warn!(account_id, %at, error = %e, "usage outside any billing period: not drawn down");
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let rows = loaded.period_rows();
            let result = loaded.with_context(|ctx| rate_period(ctx, &rows, loaded.rating_period()))?;
            let usage = PeriodUsage {
                period_start: loaded.period.start,
                currency: result.currency,
                charges: usage_charges(&result),
                at: now,
            };
            let (entries, ledger) = self
                .apply(account_id, first.take(), now, |l| l.draw_usage(&usage))
                .await?;
            let draw = PeriodDraw {
                account_id: account_id.to_string(),
                period: loaded.period,
                currency: usage.currency,
                entries,
                drawn: ledger.period_drawn(loaded.period.start),
                balance: ledger.balance(usage.currency),
            };
            if let Some(c) = &self.control {
                c.check(&draw, &ledger).await?;
            }
            out.push(draw);
        }
        Ok(out)
    }

    /// Loads the ledger (the first time, `loaded` when given), expires what is due at `now`,
    /// runs `op` and saves what changed, again from a fresh load when the save lost a race (as
    /// every credit operation does). Returns `op`'s result and the ledger as saved.
    async fn apply<T>(
        &self,
        account_id: &str,
        mut loaded: Option<LoadedLedger>,
        now: DateTime<Utc>,
        op: impl Fn(&mut CreditLedger) -> Result<T, CreditError>,
    ) -> Result<(T, CreditLedger), DrawFailure> {
        let mut attempt = 0;
        loop {
            let loaded = match loaded.take() {
                Some(l) => l,
                None => self.credits.load(account_id).await?,
            };
            let mut ledger = loaded.ledger;
            ledger.expire_due(now);
            let out = op(&mut ledger);
            if ledger.entries().is_empty() {
                return Ok((out?, ledger));
            }
            match self.credits.save(&ledger, loaded.version).await {
                Ok(()) => return Ok((out?, ledger)),
                Err(StoreError::Conflict(why)) if attempt + 1 < MAX_ATTEMPTS => {
                    attempt += 1;
                    tracing::debug!(%why, attempt, account_id, "credit ledger changed under the draw-down; drawing again");
                    (self.pause)(attempt).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
    }
}

mod control;
pub use control::SpendControl;

#[cfg(test)]
mod tests;
