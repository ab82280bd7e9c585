//! From an account's usage rows to forecast usage rows and their money: the end-of-period
//! projection and the N-day forecast.
//!
//! 1. Per meter, the usage of complete windows (hours or days) before `as_of` becomes a series
//!    (missing windows are 0) and is forecast with [`forecast_series`].
//! 2. Each forecast window becomes usage rows at the window's start, split across the
//!    (provider, dimensions) combinations in the proportions of the meter's recent usage, with
//!    quantities as exact decimals (6 places).
//! 3. The rows are rated by [`rate_period`], the invoice's own call, together with the actual
//!    usage so far: once with the point forecast and once per interval bound. Tiers, allowances,
//!    minimums, discounts and tax therefore apply to the projected usage as the invoice will
//!    apply them; cost is never extrapolated linearly.
//!
//! The money band is the range of the totals rated at the lower and at the upper usage bounds of
//! every meter and window at once. That treats the errors of all windows and meters as moving
//! together, which makes the band conservative (wider than the band of independent errors); with
//! a non-monotone price (a volume tier that lowers the unit price of everything) the rated lower
//! bound can exceed the upper one, so the two are ordered.

use super::model::{forecast_series, Method, ModelOptions, SeriesForecast};
use crate::domain::estimate::{period_to_date, rate_period, PeriodToDate};
use crate::domain::meter::Meter;
use crate::domain::money::Currency;
use crate::domain::pricing::{
    Period, Plan, RatingContext, RatingError, RatingResult, Subscription, UsageRow,
};
use crate::domain::usage::{Dimensions, Granularity};
use chrono::{DateTime, TimeDelta, Utc};
use rust_decimal::prelude::{FromPrimitive, ToPrimitive};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Decimal places of forecast quantities.
pub const QUANTITY_SCALE: u32 = 6;

/// How to forecast an account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForecastOptions {
    /// `hour` or `day` windows.
    pub granularity: Granularity,
    /// Season lengths in windows; default: `[7]` for days, `[24, 168]` for hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seasons: Option<Vec<usize>>,
    /// How many recent windows set the split of a meter across providers and dimensions.
    pub mix_windows: usize,
    /// Fit on the log scale (usage whose swings grow with its level); see [`ModelOptions::log`].
    #[serde(default)]
    pub log: bool,
}

impl ForecastOptions {
    pub fn daily() -> ForecastOptions {
        ForecastOptions {
            granularity: Granularity::Day,
            seasons: None,
            mix_windows: 28,
            log: false,
        }
    }

    pub fn hourly() -> ForecastOptions {
        ForecastOptions {
            granularity: Granularity::Hour,
            seasons: None,
            mix_windows: 7 * 24,
            log: false,
        }
    }

    fn model(&self) -> ModelOptions {
        let seasons = self.seasons.clone().unwrap_or_else(|| match self.granularity {
            Granularity::Hour => vec![24, 168],
            _ => vec![7],
        });
        ModelOptions {
            log: self.log,
            ..ModelOptions::with_seasons(seasons)
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ForecastError {
    #[error("forecasts use hour or day windows, not {0}")]
    Granularity(Granularity),
    #[error("the forecast horizon is empty")]
    EmptyHorizon,
    #[error(transparent)]
    Rating(#[from] RatingError),
}

/// One meter's history and forecast, windows of `granularity`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeterForecast {
    pub meter: Meter,
    pub granularity: Granularity,
    /// Start of the first history window.
    pub history_start: DateTime<Utc>,
    /// Usage per complete window before `forecast_start`.
    pub history: Vec<f64>,
    /// Start of the first forecast window (the window holding `as_of`).
    pub forecast_start: DateTime<Utc>,
    #[serde(flatten)]
    pub forecast: SeriesForecast,
}

/// A money range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoneyBand {
    pub lower: Decimal,
    pub upper: Decimal,
}

/// Rated totals of a forecast: the point and the 80 % / 95 % bands (gross, tax included).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Spend {
    pub currency: Currency,
    pub point: Decimal,
    pub p80: MoneyBand,
    pub p95: MoneyBand,
}

/// `GET /v1/accounts/{id}/estimate`: period to date and the projection to the period's end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PeriodEstimate {
    pub period: Period,
    pub as_of: DateTime<Utc>,
    /// Exactly what the close would invoice if no more usage came.
    pub to_date: PeriodToDate,
    /// The invoice with the point forecast of the rest of the period.
    pub projected: RatingResult,
    pub spend: Spend,
    pub meters: Vec<MeterForecast>,
}

/// `GET /v1/accounts/{id}/forecast?days=`: usage and its cost for the next `days` days.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DaysForecast {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    /// Usage at book prices after tax, without plan fees, allowances or reservations (those
    /// belong to billing periods, which the window need not match).
    pub spend: Spend,
    pub meters: Vec<MeterForecast>,
}

/// Projects `period` from the account's usage `rows` (any history, including earlier periods)
/// as known at `as_of`.
#[allow(clippy::expect_used)] // Cannot fail: rating one scenario yields one result.
pub fn estimate_period(
    ctx: &RatingContext<'_>,
    rows: &[UsageRow],
    period: Period,
    as_of: DateTime<Utc>,
    opts: &ForecastOptions,
) -> Result<PeriodEstimate, ForecastError> {
    // The history before the period feeds the forecast, not the period's invoice.
    let in_period: Vec<UsageRow> = rows
        .iter()
        .filter(|r| period.contains(r.window_start))
        .cloned()
        .collect();
    let to_date = period_to_date(ctx, &in_period, period, as_of)?;
    let actual: Vec<UsageRow> = in_period.into_iter().filter(|r| r.window_start < as_of).collect();
    let (meters, scenarios) = if as_of < period.end {
        forecast_rows(rows, as_of, period.end, Some(period), opts)?
    } else {
        // The period is over: nothing left to forecast, the projection is the invoice.
        (Vec::new(), Default::default())
    };
    let rated = scenarios
        .iter()
        .map(|future| {
            let mut all = actual.clone();
            all.extend_from_slice(future);
            rate_period(ctx, &all, period)
        })
        .collect::<Result<Vec<_>, _>>()?;
    let spend = spend(&rated, ctx.catalog.currency());
    let projected = rated.into_iter().next().expect("the point scenario");
    Ok(PeriodEstimate {
        period,
        as_of,
        to_date,
        projected,
        spend,
        meters,
    })
}

/// Forecasts the `days` days after `as_of` and rates them at book prices (pay-per-use view of
/// the account: its tax position, no plan).
pub fn forecast_days(
    ctx: &RatingContext<'_>,
    rows: &[UsageRow],
    as_of: DateTime<Utc>,
    days: u32,
    opts: &ForecastOptions,
) -> Result<DaysForecast, ForecastError> {
    if days == 0 {
        return Err(ForecastError::EmptyHorizon);
    }
    let to = as_of + TimeDelta::days(i64::from(days));
    let (meters, scenarios) = forecast_rows(rows, as_of, to, None, opts)?;
    let sub = Subscription {
        account_id: ctx.subscription.account_id.clone(),
        plan: Plan::default(),
        tax: ctx.subscription.tax.clone(),
    };
    let ppu = RatingContext {
        subscription: &sub,
        ..*ctx
    };
    // The first forecast window starts before `as_of`; rate from its start.
    let from = meters.first().map_or(as_of, |m| m.forecast_start.min(as_of));
    let rated = scenarios
        .iter()
        .map(|future| rate_period(&ppu, future, Period::new(from, to)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(DaysForecast {
        from: as_of,
        to,
        spend: spend(&rated, ctx.catalog.currency()),
        meters,
    })
}

fn spend(rated: &[RatingResult], currency: Currency) -> Spend {
    let band = |a: &RatingResult, b: &RatingResult| MoneyBand {
        lower: a.total.min(b.total),
        upper: a.total.max(b.total),
    };
    Spend {
        currency,
        point: rated[0].total,
        p80: band(&rated[1], &rated[2]),
        p95: band(&rated[3], &rated[4]),
    }
}

/// The per-meter forecasts from the window holding `as_of` to `end`, and five scenarios of
/// future rows: point, 80 % lower, 80 % upper, 95 % lower, 95 % upper. Only window starts in
/// `within` are kept; the window holding `as_of` is scaled to the part after `as_of`, the last
/// window to the part before `end`.
#[allow(clippy::type_complexity)]
#[allow(clippy::expect_used)] // Cannot fail: rows are grouped by meter, so each group has a first row.
pub fn forecast_rows(
    rows: &[UsageRow],
    as_of: DateTime<Utc>,
    end: DateTime<Utc>,
    within: Option<Period>,
    opts: &ForecastOptions,
) -> Result<(Vec<MeterForecast>, [Vec<UsageRow>; 5]), ForecastError> {
    let g = opts.granularity;
    if g == Granularity::Minute {
        return Err(ForecastError::Granularity(g));
    }
    let len = g.length();
    let cut = g.window_start(as_of);
    let steps =
        usize::try_from(((end - cut).num_seconds() + len.num_seconds() - 1) / len.num_seconds()).unwrap_or(0);
    if steps == 0 {
        return Err(ForecastError::EmptyHorizon);
    }
    let model = opts.model();
    let mut meters = Vec::new();
    let mut scenarios: [Vec<UsageRow>; 5] = Default::default();
    let mut by_meter: BTreeMap<Meter, Vec<&UsageRow>> = BTreeMap::new();
    for r in rows.iter().filter(|r| r.window_start < cut) {
        by_meter.entry(r.meter).or_default().push(r);
    }
    for (meter, mrows) in by_meter {
        let first = mrows
            .iter()
            .map(|r| g.window_start(r.window_start))
            .min()
            .expect("non-empty");
        let n = ((cut - first).num_seconds() / len.num_seconds()) as usize;
        let mut history = vec![0.0; n];
        for r in &mrows {
            let i = ((g.window_start(r.window_start) - first).num_seconds() / len.num_seconds()) as usize;
            history[i] += r.quantity.to_f64().unwrap_or(0.0);
        }
        let f = forecast_series(&history, steps, &model);
        let mix = mix(&mrows, cut - len * opts.mix_windows.max(1) as i32);
        for step in 0..steps {
            let start = cut + len * step as i32;
            if within.is_some_and(|p| !p.contains(start)) {
                continue;
            }
            // The part of the window still to come and inside the horizon.
            let from = start.max(as_of);
            let to = (start + len).min(end);
            if to <= from {
                continue;
            }
            let fraction = (to - from).num_seconds() as f64 / len.num_seconds() as f64;
            let values = [
                f.point[step],
                f.p80.lower[step],
                f.p80.upper[step],
                f.p95.lower[step],
                f.p95.upper[step],
            ];
            for (scenario, v) in scenarios.iter_mut().zip(values) {
                for (provider, dims, share) in &mix {
                    let q = Decimal::from_f64(v * fraction)
                        .unwrap_or_default()
                        .max(Decimal::ZERO)
                        * share;
                    let q = q.round_dp(QUANTITY_SCALE);
                    if q > Decimal::ZERO {
                        scenario.push(UsageRow {
                            provider_id: provider.to_string(),
                            meter,
                            dimensions: (*dims).clone(),
                            window_start: start,
                            quantity: q,
                        });
                    }
                }
            }
        }
        meters.push(MeterForecast {
            meter,
            granularity: g,
            history_start: first,
            history,
            forecast_start: cut,
            forecast: f,
        });
    }
    Ok((meters, scenarios))
}

/// Shares of the meter's usage per (provider, dimensions) since `since` (all history if there
/// is none since then). The shares add up to 1 exactly (the last takes the remainder).
fn mix<'a>(rows: &[&'a UsageRow], since: DateTime<Utc>) -> Vec<(&'a str, &'a Dimensions, Decimal)> {
    let recent: Vec<&&UsageRow> = rows.iter().filter(|r| r.window_start >= since).collect();
    let pick: Vec<&UsageRow> = if recent.iter().any(|r| r.quantity > Decimal::ZERO) {
        recent.into_iter().copied().collect()
    } else {
        rows.to_vec()
    };
    let mut sums: BTreeMap<(&str, &Dimensions), Decimal> = BTreeMap::new();
    for r in pick {
        *sums.entry((r.provider_id.as_str(), &r.dimensions)).or_default() += r.quantity;
    }
    let total: Decimal = sums.values().copied().sum();
    if total <= Decimal::ZERO {
        return sums
            .into_keys()
            .take(1)
            .map(|(p, d)| (p, d, Decimal::ONE))
            .collect();
    }
    let mut out: Vec<(&str, &Dimensions, Decimal)> = Vec::new();
    let mut left = Decimal::ONE;
    let n = sums.len();
    for (i, ((p, d), q)) in sums.into_iter().enumerate() {
        let share = if i + 1 == n {
            left
        } else {
            (q / total).round_dp(12)
        };
        left -= share;
        out.push((p, d, share));
    }
    out
}

/// True when a forecast fell back to the seasonal-naive method.
pub fn is_fallback(m: &MeterForecast) -> bool {
    m.forecast.method == Method::SeasonalNaive
}
