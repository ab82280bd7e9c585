//! `meterline forecast` (projection, next days, SVG plot) and `meterline backtest` (accuracy
//! table).

use crate::input::{instant_arg, Input};
use anyhow::{bail, Context, Result};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use meterline_shared::domain::forecast::{
    backtest, daily_trend_weekly, estimate_period, forecast_days, hourly_trend_daily_weekly, BacktestResult,
    BacktestSpec, ForecastOptions, MeterForecast, PeriodEstimate,
};
use meterline_shared::domain::meter::Meter;
use meterline_shared::domain::pricing::{
    Catalog, MarketFactors, Period, RatingContext, Subscription, TaxTable, UsageRow,
};
use meterline_shared::domain::usage::{Granularity, UsageAggregate};
use plotters::prelude::*;
use serde::Serialize;
use std::io::Write;
use std::path::{Path, PathBuf};

#[derive(Debug, clap::Args)]
pub struct ForecastArgs {
    /// The account to forecast (events and aggregates of other accounts are ignored).
    #[arg(long)]
    pub account: String,
    /// Usage: usage events (e.g. `meterline gen-usage --pattern trend-weekly`), usage
    /// aggregates, or usage rows; a JSON array.
    #[arg(long)]
    pub usage: PathBuf,
    /// The provider of aggregates (aggregates do not carry one).
    #[arg(long, default_value = "-")]
    pub provider: String,
    /// A price book, or a JSON array of books.
    #[arg(long)]
    pub price_book: PathBuf,
    /// The subscription (plan and tax position); pay-per-use and untaxed when absent.
    #[arg(long)]
    pub subscription: Option<PathBuf>,
    /// Tax rates (`{"rates": [...]}`).
    #[arg(long)]
    pub taxes: Option<PathBuf>,
    /// Spot market factors (`{"markets": {"name": [...]}}`).
    #[arg(long)]
    pub market: Option<PathBuf>,
    /// What is known: usage before this instant. Default: the end of the latest usage window.
    #[arg(long, value_parser = instant_arg)]
    pub as_of: Option<DateTime<Utc>>,
    /// The billing period; default: the calendar month (UTC) holding `as_of`.
    #[arg(long, value_parser = instant_arg)]
    pub from: Option<DateTime<Utc>>,
    /// End of the billing period, exclusive.
    #[arg(long, value_parser = instant_arg)]
    pub to: Option<DateTime<Utc>>,
    /// `hour` or `day` windows.
    #[arg(long, default_value = "day")]
    pub granularity: Granularity,
    /// Also forecast this many days ahead (usage at book prices).
    #[arg(long, default_value_t = 14)]
    pub days: u32,
    /// Draw history, forecast and the 80 %/95 % bands of one meter as SVG.
    #[arg(long)]
    pub plot: Option<PathBuf>,
    /// The meter to plot; default: the first forecast.
    #[arg(long)]
    pub meter: Option<Meter>,
    /// Fit on the log scale (usage whose swings grow with its level).
    #[arg(long)]
    pub log: bool,
    /// Print the estimate as JSON.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, clap::Args)]
pub struct BacktestArgs {
    /// Print the results as JSON.
    #[arg(long)]
    pub json: bool,
}

/// Usage as rating rows: events (filtered by account), aggregates (filtered by account, with
/// `provider`) or rows, told apart by the first element's fields; every element is then read
/// strictly as that kind.
pub fn parse_usage(input: &Input, account: &str, provider: &str) -> Result<Vec<UsageRow>> {
    let first: Option<serde_json::Map<String, serde_json::Value>> =
        serde_json::from_str::<Vec<serde_json::Value>>(&input.text)
            .ok()
            .and_then(|a| a.into_iter().next())
            .and_then(|v| match v {
                serde_json::Value::Object(m) => Some(m),
                _ => None,
            });
    let has = |k: &str| first.as_ref().is_some_and(|m| m.contains_key(k));
    if has("timestamp") && has("account_id") {
        let events = crate::input::usage_events(input)?;
        Ok(events
            .iter()
            .filter(|e| e.account_id == account)
            .map(UsageRow::from_event)
            .collect())
    } else if has("granularity") {
        let aggs: Vec<UsageAggregate> = input.parse()?;
        Ok(aggs
            .iter()
            .filter(|a| a.account_id == account)
            .map(|a| UsageRow::from_aggregate(provider, a))
            .collect())
    } else {
        input.parse()
    }
}

#[allow(clippy::expect_used)] // Cannot fail: midnight UTC on the first of a month always exists.
fn month_of(t: DateTime<Utc>) -> Period {
    let start = Utc
        .with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
        .single()
        .expect("first of a month");
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    let end = Utc
        .with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .expect("first of a month");
    Period::new(start, end)
}

#[derive(Serialize)]
struct ForecastOutput<'a> {
    estimate: &'a PeriodEstimate,
    next_days: &'a meterline_shared::domain::forecast::DaysForecast,
}

pub fn run_forecast(args: &ForecastArgs, out: &mut impl Write) -> Result<()> {
    let book_file = Input::file(&args.price_book)?;
    let books = crate::input::valid_books(&book_file)?;
    let catalog = Catalog::new(books).map_err(|e| anyhow::anyhow!("{}: {e}", book_file.name))?;
    let subscription = super::load(&args.subscription, || Subscription::pay_per_use(&args.account))?;
    let taxes: TaxTable = super::load(&args.taxes, TaxTable::default)?;
    let market: MarketFactors = super::load(&args.market, MarketFactors::default)?;
    let rows = parse_usage(&Input::file(&args.usage)?, &args.account, &args.provider)?;
    if rows.is_empty() {
        bail!("no usage for account {}", args.account);
    }
    let g = args.granularity;
    let as_of = args.as_of.unwrap_or_else(|| {
        // `rows` is not empty (checked above), so it has a latest window.
        let last = rows.iter().map(|r| r.window_start).max().unwrap_or_default();
        g.window_start(last) + g.length()
    });
    let month = month_of(as_of - chrono::TimeDelta::nanoseconds(1));
    let period = Period::new(args.from.unwrap_or(month.start), args.to.unwrap_or(month.end));
    let ctx = RatingContext {
        catalog: &catalog,
        subscription: &subscription,
        taxes: &taxes,
        market: &market,
    };
    let opts = ForecastOptions {
        log: args.log,
        ..match g {
            Granularity::Hour => ForecastOptions::hourly(),
            _ => ForecastOptions::daily(),
        }
    };
    let estimate = estimate_period(&ctx, &rows, period, as_of, &opts)?;
    let next = forecast_days(&ctx, &rows, as_of, args.days.max(1), &opts)?;
    if let Some(path) = &args.plot {
        let m = match args.meter {
            Some(m) => estimate
                .meters
                .iter()
                .find(|f| f.meter == m)
                .with_context(|| format!("no forecast for {m}"))?,
            None => estimate.meters.first().context("nothing to plot")?,
        };
        // Plot the longer of the two horizons.
        let m = next
            .meters
            .iter()
            .find(|f| f.meter == m.meter)
            .filter(|f| f.forecast.point.len() > m.forecast.point.len())
            .unwrap_or(m);
        plot(path, m, as_of)?;
    }
    if args.json {
        serde_json::to_writer_pretty(
            &mut *out,
            &ForecastOutput {
                estimate: &estimate,
                next_days: &next,
            },
        )?;
        writeln!(out)?;
        return Ok(());
    }
    let s = &estimate.spend;
    writeln!(
        out,
        "account {}  period {} .. {}  as of {}  currency {}",
        args.account, period.start, period.end, as_of, s.currency
    )?;
    writeln!(
        out,
        "to date: {} (net {}, tax {})",
        estimate.to_date.result.total, estimate.to_date.result.net_total, estimate.to_date.result.tax_total
    )?;
    writeln!(
        out,
        "projected end of period: {}  80% [{}, {}]  95% [{}, {}]",
        s.point, s.p80.lower, s.p80.upper, s.p95.lower, s.p95.upper
    )?;
    let n = &next.spend;
    writeln!(
        out,
        "next {} days (book prices): {}  80% [{}, {}]  95% [{}, {}]",
        args.days, n.point, n.p80.lower, n.p80.upper, n.p95.lower, n.p95.upper
    )?;
    for m in &estimate.meters {
        writeln!(
            out,
            "  {:<20} {:?} seasons {:?} interval scale 80% {:.2} 95% {:.2}{}",
            m.meter.as_str(),
            m.forecast.method,
            m.forecast.seasons,
            m.forecast.interval_scale.0,
            m.forecast.interval_scale.1,
            m.forecast
                .reason
                .as_deref()
                .map(|r| format!("  ({r})"))
                .unwrap_or_default()
        )?;
    }
    if let Some(p) = &args.plot {
        writeln!(out, "plot: {}", p.display())?;
    }
    Ok(())
}

/// History (last 4 × the horizon at most), the point forecast and the 80 %/95 % bands, x in
/// days from `as_of`.
pub fn plot(path: &Path, m: &MeterForecast, as_of: DateTime<Utc>) -> Result<()> {
    let step_days = m.granularity.length().num_seconds() as f64 / 86_400.0;
    let x0 = (m.forecast_start - as_of).num_seconds() as f64 / 86_400.0;
    let h = m.forecast.point.len();
    let keep = m.history.len().min((4 * h).max(28));
    let hist: Vec<(f64, f64)> = m.history[m.history.len() - keep..]
        .iter()
        .enumerate()
        .map(|(i, v)| (x0 - (keep - i) as f64 * step_days, *v))
        .collect();
    let fx = |k: usize| x0 + k as f64 * step_days;
    let f = &m.forecast;
    let ymax = hist
        .iter()
        .map(|p| p.1)
        .chain(f.p95.upper.iter().copied())
        .fold(0.0f64, f64::max)
        * 1.05;
    let xmin = hist.first().map_or(x0, |p| p.0);
    let xmax = fx(h);
    let root = SVGBackend::new(path, (1000, 500)).into_drawing_area();
    root.fill(&WHITE)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            format!(
                "{} ({} windows): history, forecast ({:?}) and 80/95% bands",
                m.meter, m.granularity, f.method
            ),
            ("sans-serif", 18),
        )
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(70)
        .build_cartesian_2d(xmin..xmax, 0.0..ymax.max(1.0))?;
    chart
        .configure_mesh()
        .x_desc(format!("days from {}", as_of.format("%Y-%m-%d %H:%M UTC")))
        .y_desc(format!("{} per {}", m.meter.unit(), m.granularity))
        .draw()?;
    let band = |lower: &[f64], upper: &[f64]| -> Vec<(f64, f64)> {
        let mut pts: Vec<(f64, f64)> = upper.iter().enumerate().map(|(k, v)| (fx(k), *v)).collect();
        pts.extend(lower.iter().enumerate().rev().map(|(k, v)| (fx(k), *v)));
        pts
    };
    chart
        .draw_series(std::iter::once(Polygon::new(
            band(&f.p95.lower, &f.p95.upper),
            BLUE.mix(0.15).filled(),
        )))?
        .label("95% interval")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], BLUE.mix(0.15).filled()));
    chart
        .draw_series(std::iter::once(Polygon::new(
            band(&f.p80.lower, &f.p80.upper),
            BLUE.mix(0.3).filled(),
        )))?
        .label("80% interval")
        .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 15, y + 5)], BLUE.mix(0.3).filled()));
    chart
        .draw_series(LineSeries::new(hist, BLACK.stroke_width(1)))?
        .label("history")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], BLACK));
    chart
        .draw_series(LineSeries::new(
            f.point.iter().enumerate().map(|(k, v)| (fx(k), *v)),
            BLUE.stroke_width(2),
        ))?
        .label("forecast")
        .legend(|(x, y)| PathElement::new([(x, y), (x + 15, y)], BLUE.stroke_width(2)));
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.8))
        .border_style(BLACK)
        .position(SeriesLabelPosition::UpperLeft)
        .draw()?;
    root.present()?;
    Ok(())
}

/// The backtest workloads: generated series with a known shape and classic public series.
pub fn workloads() -> Vec<(BacktestSpec, Vec<f64>)> {
    use augurs_testing::data::{AIR_PASSENGERS, AUSTRES, VIC_ELEC};
    let spec = |name: &str, source: &str, seasons: Vec<usize>, horizon, origins, step| BacktestSpec {
        name: name.into(),
        source: source.into(),
        seasons,
        horizon,
        origins,
        step,
        log: false,
    };
    vec![
        (
            spec(
                "generated daily: trend + weekly",
                "forecast::daily_trend_weekly(364, σ=40, seed 1)",
                vec![7],
                14,
                20,
                7,
            ),
            daily_trend_weekly(364, 40.0, 1),
        ),
        (
            spec(
                "generated hourly: trend + daily + weekly",
                "forecast::hourly_trend_daily_weekly(12 weeks, σ=30, seed 2)",
                vec![24, 168],
                48,
                12,
                24,
            ),
            hourly_trend_daily_weekly(12 * 168, 30.0, 2),
        ),
        (
            spec(
                "AirPassengers (monthly)",
                "R datasets::AirPassengers (Box & Jenkins), via crate augurs-testing 0.4.0 data::AIR_PASSENGERS",
                vec![12],
                12,
                10,
                3,
            ),
            AIR_PASSENGERS.to_vec(),
        ),
        (
            BacktestSpec {
                log: true,
                ..spec(
                    "AirPassengers, model on log scale",
                    "as above; ModelOptions::log (multiplicative seasonality)",
                    vec![12],
                    12,
                    10,
                    3,
                )
            },
            AIR_PASSENGERS.to_vec(),
        ),
        (
            spec(
                "austres (quarterly)",
                "R datasets::austres, via crate augurs-testing 0.4.0 data::AUSTRES",
                vec![4],
                8,
                10,
                2,
            ),
            AUSTRES.to_vec(),
        ),
        (
            spec(
                "vic_elec (hourly demand)",
                "R fpp vic_elec (Victoria, AU electricity demand), via crate augurs-testing 0.4.0 data::VIC_ELEC",
                vec![24, 168],
                48,
                20,
                48,
            ),
            VIC_ELEC.clone(),
        ),
    ]
}

pub fn run_backtest(args: &BacktestArgs, out: &mut impl Write) -> Result<()> {
    let results: Vec<BacktestResult> = workloads().iter().map(|(spec, y)| backtest(y, spec)).collect();
    if args.json {
        serde_json::to_writer_pretty(&mut *out, &results)?;
        writeln!(out)?;
        return Ok(());
    }
    print_backtest(out, &results)
}

pub fn print_backtest(out: &mut impl Write, results: &[BacktestResult]) -> Result<()> {
    writeln!(
        out,
        "| series | n | seasons | h | origins | MASE model | MASE seasonal naive | cover 80 model | cover 95 model | cover 80 naive | cover 95 naive | targets |"
    )?;
    writeln!(out, "|---|---|---|---|---|---|---|---|---|---|---|---|")?;
    for r in results {
        writeln!(
            out,
            "| {} | {} | {:?} | {} | {} | {:.3} | {:.3} | {:.1} | {:.1} | {:.1} | {:.1} | {} |",
            r.spec.name,
            r.points,
            r.spec.seasons,
            r.spec.horizon,
            r.spec.origins,
            r.model.mase,
            r.baseline.mase,
            r.model.coverage80,
            r.model.coverage95,
            r.baseline.coverage80,
            r.baseline.coverage95,
            if r.meets_targets() { "met" } else { "missed" }
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use meterline_shared::domain::forecast::synthetic_events;

    fn example(name: &str) -> String {
        format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    #[test]
    fn forecast_prints_the_projection_and_draws_the_bands() {
        let dir = std::env::temp_dir().join(format!("meterline-forecast-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let usage = dir.join("usage.json");
        let start = "2026-01-01T00:00:00Z".parse().unwrap();
        let events = synthetic_events("acct-demo", "gpu-cloud", start, 50, 7);
        std::fs::write(&usage, serde_json::to_string(&events).unwrap()).unwrap();
        let svg = dir.join("forecast.svg");
        let cli = <super::super::Cli as clap::Parser>::try_parse_from([
            "meterline",
            "forecast",
            "--account",
            "acct-demo",
            "--usage",
            usage.to_str().unwrap(),
            "--price-book",
            &example("price-book.json"),
            "--taxes",
            &example("taxes.json"),
            "--as-of",
            "2026-02-10T00:00:00Z",
            "--plot",
            svg.to_str().unwrap(),
        ])
        .unwrap();
        let mut out = Vec::new();
        super::super::run(cli, &mut out).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(
            out.contains("period 2026-02-01 00:00:00 UTC .. 2026-03-01 00:00:00 UTC"),
            "{out}"
        );
        assert!(out.contains("projected end of period"), "{out}");
        assert!(out.contains("MstlEts"), "{out}");
        let svg = std::fs::read_to_string(&svg).unwrap();
        assert_eq!(svg.matches("<polygon").count(), 2, "two bands");
        assert!(svg.contains("95% interval") && svg.contains("forecast"));
    }

    #[test]
    fn usage_may_be_events_aggregates_or_rows() {
        let input = |text: &str| Input {
            name: "usage.json".into(),
            text: text.into(),
        };
        let start = "2026-01-01T00:00:00Z".parse().unwrap();
        let mut events = synthetic_events("a", "p", start, 1, 1);
        events.extend(synthetic_events("b", "p", start, 1, 1));
        let rows = parse_usage(&input(&serde_json::to_string(&events).unwrap()), "a", "-").unwrap();
        assert_eq!(rows.len(), 48);
        let agg = r#"[{"account_id":"a","granularity":"day","window_start":"2026-01-01T00:00:00Z","meter":"cpu_seconds","quantity":"5","event_count":1}]"#;
        let rows = parse_usage(&input(agg), "a", "prov").unwrap();
        assert_eq!(rows[0].provider_id, "prov");
        let plain = r#"[{"provider_id":"p","meter":"cpu_seconds","window_start":"2026-01-01T00:00:00Z","quantity":"1"}]"#;
        assert_eq!(parse_usage(&input(plain), "a", "-").unwrap().len(), 1);
    }

    #[test]
    fn events_and_aggregates_are_read_strictly() {
        let input = |text: &str| Input {
            name: "usage.json".into(),
            text: text.into(),
        };
        let start = "2026-01-01T00:00:00Z".parse().unwrap();
        let events = synthetic_events("a", "p", start, 1, 1);
        let mut text = serde_json::to_string_pretty(&events).unwrap();
        // The second event's dimensions, misspelled: refused, not rated without them.
        let second = text.match_indices("\"dimensions\"").nth(1).unwrap().0;
        text.replace_range(second..second + 12, "\"dimension\"");
        let e = parse_usage(&input(&text), "a", "-").unwrap_err().to_string();
        let brace = text.match_indices("\n  {").nth(1).unwrap().0 + 1;
        let line = text[..brace].matches('\n').count() + 1;
        assert!(e.starts_with(&format!("usage.json:{line}:")), "{e}");
        assert!(
            e.contains("[1].dimension: is not a field of a usage event"),
            "{e}"
        );
        let agg = r#"[{"account_id":"a","granularity":"day","window_start":"2026-01-01T00:00:00Z",
            "meter":"cpu_seconds","quantity":"5","event_count":1,"provider":"p"}]"#;
        let e = parse_usage(&input(agg), "a", "-").unwrap_err().to_string();
        assert!(e.starts_with("usage.json:2:"), "{e}");
        assert!(e.contains("[0].provider: unknown field"), "{e}");
    }

    #[test]
    fn the_backtest_table_has_a_row_per_series() {
        let spec = BacktestSpec {
            name: "daily".into(),
            source: "generated".into(),
            seasons: vec![7],
            horizon: 7,
            origins: 3,
            step: 7,
            log: false,
        };
        let r = backtest(&daily_trend_weekly(120, 40.0, 5), &spec);
        let mut out = Vec::new();
        print_backtest(&mut out, &[r]).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert_eq!(out.lines().count(), 3, "{out}");
        assert!(
            out.lines()
                .nth(2)
                .unwrap()
                .starts_with("| daily | 120 | [7] | 7 | 3 |"),
            "{out}"
        );
        assert_eq!(workloads().len(), 6);
    }
}
