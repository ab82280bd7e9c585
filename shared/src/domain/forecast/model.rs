//! Forecasting one series of numbers: MSTL decomposition with an AutoETS trend (augurs), or a
//! seasonal-naive forecast when the history is too short, with 80 % and 95 % prediction
//! intervals.
//!
//! Usage is forecast as `f64`: a forecast is a statistical estimate, never an amount of money.
//! It becomes money only by being turned into usage rows (exact decimals, see `project`) and
//! rated by the pricing engine.

use augurs_core::{Fit, Predict};
use augurs_ets::trend::AutoETSTrendModel;
use augurs_ets::AutoETS;
use augurs_mstl::MSTLModel;
use serde::{Deserialize, Serialize};

/// The two interval levels every forecast carries.
pub const LEVELS: [f64; 2] = [0.80, 0.95];
/// Standard normal quantiles of the 80 % and 95 % central intervals.
const Z80: f64 = 1.281_551_565_545;
const Z95: f64 = 1.959_963_984_540;

/// How a forecast was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Method {
    /// MSTL decomposition (one seasonal component per season length) and an AutoETS model of
    /// the deseasonalised series (trend + remainder), which gives the intervals.
    MstlEts,
    /// AutoETS without seasonality (no season was asked for).
    Ets,
    /// The value one season earlier, with intervals from the seasonal differences.
    SeasonalNaive,
}

/// A central prediction interval per step.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Band {
    pub lower: Vec<f64>,
    pub upper: Vec<f64>,
}

/// A forecast of `point.len()` steps after the history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesForecast {
    pub method: Method,
    /// Why the model is simpler than asked (too little history, a season dropped, a model
    /// failure), for the response.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// The season lengths the model used.
    pub seasons: Vec<usize>,
    /// The factors the model's 80 % and 95 % interval widths were multiplied by after
    /// calibration (1: none).
    pub interval_scale: (f64, f64),
    pub point: Vec<f64>,
    pub p80: Band,
    pub p95: Band,
}

/// Forecasting settings for one series.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelOptions {
    /// Season lengths in steps (7 for daily data with a weekly cycle; 24 and 168 for hourly).
    pub seasons: Vec<usize>,
    /// A season is modelled only with at least this many full cycles of history.
    pub min_cycles: usize,
    /// Only the latest `max_history` points are fitted (older behaviour matters little and the
    /// fit stays fast); `0` fits everything.
    pub max_history: usize,
    /// Clamp point and bounds at zero (usage cannot be negative).
    pub non_negative: bool,
    /// Rolling origins inside the history used to check the model's interval widths (see
    /// [`calibrate`]); `0` keeps the model's own intervals.
    pub calibration_origins: usize,
    /// Fit on the natural log of the history (multiplicative trend and seasonality) and
    /// transform point and bounds back (the point is then the median). Ignored, with a note,
    /// when the history has values ≤ 0.
    #[serde(default)]
    pub log: bool,
}

impl ModelOptions {
    pub fn with_seasons(seasons: Vec<usize>) -> ModelOptions {
        let longest = seasons.iter().copied().max().unwrap_or(1);
        ModelOptions {
            seasons,
            min_cycles: 2,
            max_history: (longest * 8).max(112),
            non_negative: true,
            calibration_origins: 5,
            log: false,
        }
    }
}

/// Forecasts `horizon` steps after `history`.
///
/// With at least `min_cycles` cycles of some season and at least 8 points: MSTL on the seasons
/// that have enough history, AutoETS on the rest. Otherwise (or if fitting fails) the
/// seasonal-naive forecast, with the reason. Without seasons: AutoETS alone.
pub fn forecast_series(history: &[f64], horizon: usize, opts: &ModelOptions) -> SeriesForecast {
    if opts.log {
        if !history.is_empty() && history.iter().all(|v| *v > 0.0) {
            let logged: Vec<f64> = history.iter().map(|v| v.ln()).collect();
            let inner = ModelOptions {
                log: false,
                non_negative: false,
                ..opts.clone()
            };
            let mut f = forecast_series(&logged, horizon, &inner);
            for v in f
                .point
                .iter_mut()
                .chain(f.p80.lower.iter_mut())
                .chain(f.p80.upper.iter_mut())
                .chain(f.p95.lower.iter_mut())
                .chain(f.p95.upper.iter_mut())
            {
                *v = v.exp();
            }
            let note = "fitted on the log scale (the point is the median)";
            f.reason = Some(f.reason.map_or(note.to_string(), |r| format!("{note}; {r}")));
            return f;
        }
        let mut f = forecast_series(
            history,
            horizon,
            &ModelOptions {
                log: false,
                ..opts.clone()
            },
        );
        let note = "log scale not used: the history has values ≤ 0";
        f.reason = Some(f.reason.map_or(note.to_string(), |r| format!("{note}; {r}")));
        return f;
    }
    let y = if opts.max_history > 0 && history.len() > opts.max_history {
        &history[history.len() - opts.max_history..]
    } else {
        history
    };
    let mut seasons: Vec<usize> = opts.seasons.iter().copied().filter(|&m| m > 1).collect();
    seasons.sort_unstable();
    seasons.dedup();
    let fits = |m: usize| y.len() >= m * opts.min_cycles.max(2);
    let usable: Vec<usize> = seasons.iter().copied().filter(|&m| fits(m)).collect();
    let dropped: Vec<usize> = seasons.iter().copied().filter(|&m| !fits(m)).collect();
    let mut notes = Vec::new();
    if !dropped.is_empty() {
        notes.push(format!(
            "season(s) {dropped:?} not modelled: {} points of history, {} cycles needed",
            y.len(),
            opts.min_cycles.max(2)
        ));
    }
    let out = if y.len() < 8 || (!seasons.is_empty() && usable.is_empty()) {
        notes.push(format!(
            "too little history for MSTL/ETS ({} points): seasonal naive",
            y.len()
        ));
        seasonal_naive(y, horizon, &seasons)
    } else {
        match fit_augurs(y, horizon, &usable) {
            Ok(mut f) => {
                if opts.calibration_origins > 0 {
                    f.interval_scale = calibrate(y, horizon, &usable, opts.calibration_origins);
                    widen(&mut f);
                }
                f
            }
            Err(e) => {
                notes.push(format!("model fit failed ({e}): seasonal naive"));
                seasonal_naive(y, horizon, &seasons)
            }
        }
    };
    let mut out = out;
    if !notes.is_empty() {
        out.reason = Some(notes.join("; "));
    }
    if opts.non_negative {
        for v in out
            .point
            .iter_mut()
            .chain(out.p80.lower.iter_mut())
            .chain(out.p80.upper.iter_mut())
            .chain(out.p95.lower.iter_mut())
            .chain(out.p95.upper.iter_mut())
        {
            *v = v.max(0.0);
        }
    }
    out
}

fn fit_augurs(y: &[f64], horizon: usize, seasons: &[usize]) -> Result<SeriesForecast, String> {
    if y.iter().any(|v| !v.is_finite()) {
        return Err("non-finite values".into());
    }
    let predict = |p: &dyn Fn(f64) -> Result<augurs_core::Forecast, String>| -> Result<_, String> {
        let mut bands = Vec::new();
        let mut point = Vec::new();
        for level in LEVELS {
            let f = p(level)?;
            let i = f.intervals.ok_or("no intervals")?;
            point = f.point;
            bands.push(Band {
                lower: i.lower,
                upper: i.upper,
            });
        }
        let p95 = bands.pop().unwrap_or_default();
        let p80 = bands.pop().unwrap_or_default();
        Ok((point, p80, p95))
    };
    let (method, (point, p80, p95)) = if seasons.is_empty() {
        let fitted = AutoETS::non_seasonal().fit(y).map_err(|e| e.to_string())?;
        (
            Method::Ets,
            predict(&|l| fitted.predict(horizon, l).map_err(|e| e.to_string()))?,
        )
    } else {
        let trend = AutoETSTrendModel::from(AutoETS::non_seasonal());
        let fitted = MSTLModel::new(seasons.to_vec(), trend)
            .fit(y)
            .map_err(|e| e.to_string())?;
        (
            Method::MstlEts,
            predict(&|l| fitted.predict(horizon, l).map_err(|e| e.to_string()))?,
        )
    };
    if point.len() != horizon || point.iter().chain(&p95.upper).any(|v| !v.is_finite()) {
        return Err("non-finite forecast".into());
    }
    Ok(SeriesForecast {
        method,
        reason: None,
        seasons: seasons.to_vec(),
        interval_scale: (1.0, 1.0),
        point,
        p80,
        p95,
    })
}

/// How much the model's interval widths must be scaled to match its errors on the history,
/// for the 80 % and the 95 % band.
///
/// MSTL puts the seasonal components' uncertainty nowhere and fits the remainder in-sample, so
/// its intervals can be too narrow (or, on smooth series, too wide). This refits the model at
/// `origins` points near the end of the history (each `min(horizon, longest season)` apart,
/// keeping two cycles of the longest season to fit), forecasts the held-out steps, and
/// standardizes the errors by the model's own standard deviations `σ̂(h)` (read off its 95 %
/// interval): `z = e / σ̂(h)`. With at least 40 held-out points each band's factor is the
/// empirical quantile of `|z|` at its level divided by the normal quantile (so heavy tails
/// widen the 95 % band more than the 80 % one); with fewer, both use the root mean square of
/// `z`. Factors are clamped to `[0.5, 4]`; with nothing to hold out they are 1.
pub fn calibrate(y: &[f64], horizon: usize, seasons: &[usize], origins: usize) -> (f64, f64) {
    let longest = seasons.iter().copied().max().unwrap_or(1);
    let h = horizon.min(longest.max(7)).max(1);
    let mut z: Vec<f64> = Vec::new();
    for j in 1..=origins {
        let Some(o) = y.len().checked_sub(h * j) else {
            break;
        };
        if o < 2 * longest.max(4) {
            break;
        }
        let Ok(f) = fit_augurs(&y[..o], h, seasons) else {
            continue;
        };
        for (k, actual) in y[o..o + h].iter().enumerate() {
            let sd = (f.p95.upper[k] - f.p95.lower[k]) / (2.0 * Z95);
            if sd > 0.0 {
                z.push(((actual - f.point[k]) / sd).abs());
            }
        }
    }
    if z.is_empty() {
        return (1.0, 1.0);
    }
    let clamp = |s: f64| s.clamp(0.5, 4.0);
    if z.len() < 40 {
        let rms = (z.iter().map(|v| v * v).sum::<f64>() / z.len() as f64).sqrt();
        return (clamp(rms), clamp(rms));
    }
    z.sort_by(f64::total_cmp);
    let q = |p: f64| z[((p * z.len() as f64).ceil() as usize).clamp(1, z.len()) - 1];
    let s95 = clamp(q(0.95) / Z95);
    // The 80 % band stays inside the 95 % one.
    let s80 = clamp(q(0.80) / Z80).min(s95 * Z95 / Z80);
    (s80, s95)
}

/// Rebuilds both bands around the point with the model's standard deviations scaled by
/// `f.interval_scale`.
fn widen(f: &mut SeriesForecast) {
    let (s80, s95) = f.interval_scale;
    for k in 0..f.point.len() {
        let sd = (f.p95.upper[k] - f.p95.lower[k]) / (2.0 * Z95);
        let p = f.point[k];
        f.p80.lower[k] = p - Z80 * sd * s80;
        f.p80.upper[k] = p + Z80 * sd * s80;
        f.p95.lower[k] = p - Z95 * sd * s95;
        f.p95.upper[k] = p + Z95 * sd * s95;
    }
}

/// The seasonal-naive forecast: `ŷ(n+h) = y(n+h−m·k)` with `k = ⌈h/m⌉`, using the longest of
/// `seasons` with at least one full cycle plus one point of history (else `m = 1`, the naive
/// forecast). With `σ` the root mean square of the seasonal differences `y(t) − y(t−m)`, the
/// interval at step `h` is `ŷ ± z·σ·√k` (Hyndman & Athanasopoulos, *Forecasting: Principles
/// and Practice*, 3rd ed., §5.5).
pub fn seasonal_naive(y: &[f64], horizon: usize, seasons: &[usize]) -> SeriesForecast {
    let m = seasons
        .iter()
        .copied()
        .filter(|&m| m >= 1 && y.len() > m)
        .max()
        .unwrap_or(1);
    let n = y.len();
    let diffs: Vec<f64> = (m..n).map(|t| y[t] - y[t - m]).collect();
    let sigma = if diffs.is_empty() {
        0.0
    } else {
        (diffs.iter().map(|e| e * e).sum::<f64>() / diffs.len() as f64).sqrt()
    };
    let mut f = SeriesForecast {
        method: Method::SeasonalNaive,
        reason: None,
        seasons: if m > 1 { vec![m] } else { Vec::new() },
        interval_scale: (1.0, 1.0),
        point: Vec::with_capacity(horizon),
        p80: Band::default(),
        p95: Band::default(),
    };
    for h in 1..=horizon {
        let k = h.div_ceil(m);
        let p = if n == 0 {
            0.0
        } else if n >= m {
            y[n - m + (h - 1) % m]
        } else {
            y[n - 1]
        };
        let s = sigma * (k as f64).sqrt();
        f.point.push(p);
        f.p80.lower.push(p - Z80 * s);
        f.p80.upper.push(p + Z80 * s);
        f.p95.lower.push(p - Z95 * s);
        f.p95.upper.push(p + Z95 * s);
    }
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `y(t) = 200 + 3t + weekly(t mod 7) + noise`, noise uniform in ±5.
    fn trend_weekly(n: usize, seed: u64) -> (Vec<f64>, impl Fn(usize) -> f64) {
        const WEEK: [f64; 7] = [40.0, 55.0, 50.0, 45.0, 30.0, -100.0, -120.0];
        let truth = |t: usize| 200.0 + 3.0 * t as f64 + WEEK[t % 7];
        let mut rng = crate::domain::usage::generator::Rng::new(seed);
        let y = (0..n)
            .map(|t| truth(t) + (rng.below(10_001) as f64 / 1000.0 - 5.0))
            .collect();
        (y, truth)
    }

    #[test]
    fn a_linear_trend_and_weekly_cycle_are_recovered() {
        let (y, truth) = trend_weekly(84, 1);
        let f = forecast_series(&y, 28, &ModelOptions::with_seasons(vec![7]));
        assert_eq!(f.method, Method::MstlEts, "{:?}", f.reason);
        assert_eq!(f.reason, None);
        for (h, p) in f.point.iter().enumerate() {
            let want = truth(84 + h);
            assert!(
                (p - want).abs() <= 0.04 * want.abs().max(100.0),
                "step {h}: forecast {p:.1}, truth {want:.1}"
            );
        }
        // The trend: a week later is 7 × 3 = 21 higher, at every weekday.
        for h in 0..21 {
            let slope = (f.point[h + 7] - f.point[h]) / 7.0;
            assert!((slope - 3.0).abs() < 0.6, "slope at {h}: {slope:.2}");
        }
        // The weekly shape: the weekend dip, by weekday, within 15 of the truth.
        for h in 0..7 {
            let shape = f.point[h] - (f.point[0..7].iter().sum::<f64>() / 7.0);
            let want = truth(84 + h) - (0..7).map(|k| truth(84 + k)).sum::<f64>() / 7.0;
            assert!(
                (shape - want).abs() < 15.0,
                "weekday {h}: {shape:.1} vs {want:.1}"
            );
        }
        // The truth is inside the 95 % band at every step.
        for h in 0..28 {
            let want = truth(84 + h);
            assert!(f.p95.lower[h] <= want && want <= f.p95.upper[h], "step {h}");
        }
    }

    #[test]
    fn the_band_widens_with_the_horizon_and_nests() {
        let (y, _) = trend_weekly(84, 2);
        let opts = ModelOptions::with_seasons(vec![7]);
        for f in [forecast_series(&y, 28, &opts), seasonal_naive(&y, 28, &[7])] {
            let w80: Vec<f64> = (0..28).map(|h| f.p80.upper[h] - f.p80.lower[h]).collect();
            let w95: Vec<f64> = (0..28).map(|h| f.p95.upper[h] - f.p95.lower[h]).collect();
            for h in 1..28 {
                assert!(w95[h] >= w95[h - 1] - 1e-9, "{:?} step {h}: {w95:?}", f.method);
                assert!(w80[h] >= w80[h - 1] - 1e-9, "{:?} step {h}", f.method);
            }
            // Strictly wider at the end; how much depends on the fitted smoothing (the naive
            // band grows with √k, k = ⌈h/7⌉: √4 = 2 times at step 28).
            let growth = if f.method == Method::SeasonalNaive {
                1.99
            } else {
                1.05
            };
            assert!(
                w95[27] > w95[0] * growth,
                "{:?}: {} vs {}",
                f.method,
                w95[27],
                w95[0]
            );
            for h in 0..28 {
                assert!(f.p95.lower[h] <= f.p80.lower[h] && f.p80.lower[h] <= f.point[h]);
                assert!(f.point[h] <= f.p80.upper[h] && f.p80.upper[h] <= f.p95.upper[h]);
            }
        }
    }

    #[test]
    fn too_little_history_falls_back_to_seasonal_naive_and_says_so() {
        let y = [10.0, 12.0, 11.0, 13.0, 30.0, 5.0, 4.0, 11.0, 13.0, 12.0];
        let f = forecast_series(&y, 9, &ModelOptions::with_seasons(vec![7]));
        assert_eq!(f.method, Method::SeasonalNaive);
        assert!(
            f.reason.as_deref().unwrap().contains("seasonal naive"),
            "{:?}",
            f.reason
        );
        assert_eq!(f.seasons, vec![7]);
        // One season back: y[3..10] then again.
        assert_eq!(&f.point[..7], &y[3..10]);
        assert_eq!(f.point[7], y[3]);
        // σ = rms of (11−10, 13−12, 12−11) = 1; step 1 ± 1.96, step 8 (k = 2) ± 1.96·√2.
        assert!((f.p95.upper[0] - f.point[0] - Z95).abs() < 1e-9);
        assert!((f.p95.upper[7] - f.point[7] - Z95 * 2f64.sqrt()).abs() < 1e-9);
        // No history at all: zero, flat.
        let empty = forecast_series(&[], 3, &ModelOptions::with_seasons(vec![7]));
        assert_eq!(empty.point, vec![0.0; 3]);
        assert_eq!(empty.method, Method::SeasonalNaive);
    }

    #[test]
    fn the_log_scale_follows_a_multiplicative_season_and_is_skipped_on_zeros() {
        // 100·1.02^t × a weekly factor: the swing grows with the level.
        const WEEK: [f64; 7] = [1.2, 1.3, 1.25, 1.2, 1.1, 0.5, 0.45];
        let truth = |t: usize| 100.0 * 1.02f64.powi(t as i32) * WEEK[t % 7];
        let y: Vec<f64> = (0..70).map(truth).collect();
        let opts = ModelOptions {
            log: true,
            ..ModelOptions::with_seasons(vec![7])
        };
        let f = forecast_series(&y, 14, &opts);
        assert_eq!(f.method, Method::MstlEts);
        assert!(f.reason.as_deref().unwrap().contains("log scale"));
        for h in 0..14 {
            let want = truth(70 + h);
            assert!(
                (f.point[h] - want).abs() < 0.05 * want,
                "step {h}: {} vs {want}",
                f.point[h]
            );
            assert!(f.p95.lower[h] > 0.0 && f.p95.lower[h] <= f.point[h]);
        }
        let mut zeros = y.clone();
        zeros[3] = 0.0;
        let f = forecast_series(&zeros, 14, &opts);
        assert!(
            f.reason.as_deref().unwrap().contains("log scale not used"),
            "{:?}",
            f.reason
        );
    }
}
