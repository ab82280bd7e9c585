//! Forecast accuracy on rolling origins, against the seasonal-naive baseline, and series with
//! a known trend and seasonality to measure it on.
//!
//! For each origin `o` (the last `origins` ones, `step` apart, the latest leaving exactly
//! `horizon` points to test), the model is fitted on `y[..o]` and forecasts `y[o..o+horizon]`.
//!
//! * **MASE** (mean absolute scaled error, Hyndman & Koehler 2006): the forecast's mean
//!   absolute error divided by the in-sample mean absolute error of the seasonal-naive forecast
//!   on `y[..o]` (season `m`, the longest season with a full cycle of history), averaged over
//!   origins. Below 1 beats the in-sample naive; the table compares it to the out-of-sample
//!   seasonal-naive baseline's MASE on the same origins and scale.
//! * **Coverage**: the share of test points inside the 80 % and 95 % intervals (nominal 80 and
//!   95).

use super::model::{forecast_series, seasonal_naive, Method, ModelOptions, SeriesForecast};
use crate::domain::usage::generator::Rng;
use serde::{Deserialize, Serialize};

/// A series to backtest and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BacktestSpec {
    pub name: String,
    /// Where the data comes from.
    pub source: String,
    pub seasons: Vec<usize>,
    pub horizon: usize,
    pub origins: usize,
    /// Points between consecutive origins.
    pub step: usize,
    /// Fit the model on the log scale ([`ModelOptions::log`]); the baseline stays on the
    /// original scale.
    #[serde(default)]
    pub log: bool,
}

/// Accuracy of one method over all origins.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Scores {
    pub mase: f64,
    /// Percent of test points inside the 80 % interval.
    pub coverage80: f64,
    /// Percent of test points inside the 95 % interval.
    pub coverage95: f64,
}

/// One row of the backtest table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BacktestResult {
    pub spec: BacktestSpec,
    pub points: usize,
    pub model: Scores,
    pub baseline: Scores,
    /// How many origins the model fell back to seasonal naive.
    pub fallbacks: usize,
}

impl BacktestResult {
    /// MASE below the baseline's and both coverages within 5 points of nominal.
    pub fn meets_targets(&self) -> bool {
        self.model.mase < self.baseline.mase
            && (self.model.coverage80 - 80.0).abs() <= 5.0
            && (self.model.coverage95 - 95.0).abs() <= 5.0
    }
}

/// Runs the rolling-origin backtest of `y` (see the module docs).
pub fn backtest(y: &[f64], spec: &BacktestSpec) -> BacktestResult {
    let opts = ModelOptions {
        non_negative: false,
        log: spec.log,
        ..ModelOptions::with_seasons(spec.seasons.clone())
    };
    let (mut model, mut baseline) = (Acc::default(), Acc::default());
    let mut fallbacks = 0;
    for k in (0..spec.origins).rev() {
        let Some(o) = y.len().checked_sub(spec.horizon + k * spec.step) else {
            continue;
        };
        if o < 2 {
            continue;
        }
        let (train, test) = (&y[..o], &y[o..o + spec.horizon]);
        let scale = naive_scale(train, &spec.seasons);
        let f = forecast_series(train, spec.horizon, &opts);
        if f.method == Method::SeasonalNaive {
            fallbacks += 1;
        }
        model.add(&f, test, scale);
        baseline.add(&seasonal_naive(train, spec.horizon, &spec.seasons), test, scale);
    }
    BacktestResult {
        spec: spec.clone(),
        points: y.len(),
        model: model.scores(),
        baseline: baseline.scores(),
        fallbacks,
    }
}

/// In-sample MAE of the seasonal-naive forecast: `mean |y(t) − y(t−m)|`.
fn naive_scale(train: &[f64], seasons: &[usize]) -> f64 {
    let m = seasons
        .iter()
        .copied()
        .filter(|&m| m >= 1 && train.len() > m)
        .max()
        .unwrap_or(1);
    let n = train.len().saturating_sub(m).max(1);
    let mae = (m..train.len())
        .map(|t| (train[t] - train[t - m]).abs())
        .sum::<f64>()
        / n as f64;
    if mae > 0.0 {
        mae
    } else {
        1.0
    }
}

#[derive(Default)]
struct Acc {
    mase: Vec<f64>,
    points: usize,
    in80: usize,
    in95: usize,
}

impl Acc {
    fn add(&mut self, f: &SeriesForecast, test: &[f64], scale: f64) {
        let mae = test.iter().zip(&f.point).map(|(a, p)| (a - p).abs()).sum::<f64>() / test.len() as f64;
        self.mase.push(mae / scale);
        for (h, a) in test.iter().enumerate() {
            self.points += 1;
            self.in80 += usize::from(f.p80.lower[h] <= *a && *a <= f.p80.upper[h]);
            self.in95 += usize::from(f.p95.lower[h] <= *a && *a <= f.p95.upper[h]);
        }
    }

    fn scores(&self) -> Scores {
        let pct = |n: usize| 100.0 * n as f64 / self.points.max(1) as f64;
        Scores {
            mase: self.mase.iter().sum::<f64>() / self.mase.len().max(1) as f64,
            coverage80: pct(self.in80),
            coverage95: pct(self.in95),
        }
    }
}

/// A standard normal draw (Box–Muller) from the crate's deterministic generator.
pub fn normal(rng: &mut Rng) -> f64 {
    let u = |rng: &mut Rng| ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
    let (u1, u2) = (u(rng), u(rng));
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Daily usage with a known shape: `1000 + 4·t + weekly(t mod 7) + N(0, σ²)`, weekly =
/// `[120, 150, 140, 110, 60, −250, −330]` (weekdays busy, weekends quiet).
pub fn daily_trend_weekly(days: usize, sigma: f64, seed: u64) -> Vec<f64> {
    const WEEK: [f64; 7] = [120.0, 150.0, 140.0, 110.0, 60.0, -250.0, -330.0];
    let mut rng = Rng::new(seed);
    (0..days)
        .map(|t| 1000.0 + 4.0 * t as f64 + WEEK[t % 7] + sigma * normal(&mut rng))
        .collect()
}

/// Hourly usage with a known shape: `500 + 0.05·t + 200·sin(2π(h−8)/24)` on weekdays, the
/// daily swing halved and the level lowered by 150 at weekends, plus `N(0, σ²)`.
pub fn hourly_trend_daily_weekly(hours: usize, sigma: f64, seed: u64) -> Vec<f64> {
    let mut rng = Rng::new(seed);
    (0..hours)
        .map(|t| {
            let (h, day) = (t % 24, (t / 24) % 7);
            let weekend = day >= 5;
            let swing = 200.0 * (std::f64::consts::TAU * (h as f64 - 8.0) / 24.0).sin();
            let v = 500.0 + 0.05 * t as f64 + if weekend { swing / 2.0 - 150.0 } else { swing };
            v + sigma * normal(&mut rng)
        })
        .collect()
}

/// Hourly usage events of one account for `days` days from `start`, shaped by
/// [`hourly_trend_daily_weekly`] (σ = 30): each hour one `gpu_seconds` event (H100, 10 s per
/// unit of the series) and one `cpu_seconds` event (40 s per unit), on `provider_id`. For the
/// `meterline forecast` demo and tests: the trend and cycles are known.
pub fn synthetic_events(
    account_id: &str,
    provider_id: &str,
    start: chrono::DateTime<chrono::Utc>,
    days: usize,
    seed: u64,
) -> Vec<crate::domain::usage::UsageEvent> {
    use rust_decimal::prelude::FromPrimitive;
    use rust_decimal::Decimal;
    let shape = hourly_trend_daily_weekly(days * 24, 30.0, seed);
    let mut out = Vec::with_capacity(shape.len() * 2);
    for (h, v) in shape.iter().enumerate() {
        let at = start + chrono::TimeDelta::hours(h as i64);
        for (meter, per_unit, dims) in [
            (
                crate::domain::meter::Meter::GpuSeconds,
                10.0,
                vec![("gpu_model", "H100"), ("region", "eu-west")],
            ),
            (
                crate::domain::meter::Meter::CpuSeconds,
                40.0,
                vec![("region", "eu-west")],
            ),
        ] {
            out.push(crate::domain::usage::UsageEvent {
                id: format!("{}-{meter}-{h:06}", account_id),
                account_id: account_id.to_string(),
                provider_id: provider_id.to_string(),
                job_id: format!("job-{}", h / 24),
                meter,
                quantity: Decimal::from_f64(v.max(0.0) * per_unit)
                    .unwrap_or_default()
                    .round_dp(3),
                timestamp: at,
                dimensions: dims
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn on_a_known_trend_and_weekly_cycle_the_model_beats_seasonal_naive() {
        let y = daily_trend_weekly(182, 40.0, 3);
        let spec = BacktestSpec {
            name: "daily".into(),
            source: "generated".into(),
            seasons: vec![7],
            horizon: 14,
            origins: 8,
            step: 7,
            log: false,
        };
        let r = backtest(&y, &spec);
        assert_eq!(r.fallbacks, 0);
        assert!(r.model.mase < r.baseline.mase, "{r:?}");
        assert!(r.model.coverage95 >= 85.0, "{r:?}");
    }

    #[test]
    fn scores_are_exact_on_a_hand_made_case() {
        // A perfectly periodic series: seasonal naive is exact, so its MASE is 0 and it covers
        // everything (σ = 0 gives zero-width intervals that contain the truth).
        let y: Vec<f64> = (0..40).map(|t| [1.0, 5.0, 3.0, 9.0][t % 4] + 10.0).collect();
        let spec = BacktestSpec {
            name: "periodic".into(),
            source: "hand".into(),
            seasons: vec![4],
            horizon: 4,
            origins: 3,
            step: 4,
            log: false,
        };
        let r = backtest(&y, &spec);
        assert_eq!(r.baseline.mase, 0.0);
        assert_eq!((r.baseline.coverage80, r.baseline.coverage95), (100.0, 100.0));
    }
}
