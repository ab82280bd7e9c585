//! The period-to-date estimate: the open period rated exactly as its close will rate it.

use crate::domain::pricing::{rate, Period, RatingContext, RatingError, RatingResult, UsageRow};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Rates an account's usage for a billing period. The invoice close and every estimate call
/// this one function, so they cannot drift apart: for the same rows, context and period the
/// result is identical to the minor unit.
pub fn rate_period(
    ctx: &RatingContext<'_>,
    rows: &[UsageRow],
    period: Period,
) -> Result<RatingResult, RatingError> {
    rate(ctx, rows, period)
}

/// What the open period costs so far.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeriodToDate {
    /// Usage with a window starting before this instant is included.
    pub as_of: DateTime<Utc>,
    /// The period rated with the usage so far: the invoice as it would be if the period
    /// closed with no more usage (fees, minimums, discounts and tax included).
    pub result: RatingResult,
    /// Rows left out because their window starts at or after `as_of`.
    pub rows_after_as_of: usize,
}

/// Rates the usage of `period` that happened before `as_of` with [`rate_period`].
///
/// The rating period is the whole billing period, not `[start, as_of)`: the recurring fee's
/// proration, the tax point (the period's last instant), per-price and plan minimums and the
/// reservation fees are the ones the close will apply. Only the usage is cut at `as_of`.
pub fn period_to_date(
    ctx: &RatingContext<'_>,
    rows: &[UsageRow],
    period: Period,
    as_of: DateTime<Utc>,
) -> Result<PeriodToDate, RatingError> {
    let (so_far, later): (Vec<&UsageRow>, Vec<&UsageRow>) = rows.iter().partition(|r| r.window_start < as_of);
    let so_far: Vec<UsageRow> = so_far.into_iter().cloned().collect();
    Ok(PeriodToDate {
        as_of,
        result: rate_period(ctx, &so_far, period)?,
        rows_after_as_of: later.len(),
    })
}
