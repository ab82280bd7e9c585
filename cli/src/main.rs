//! `meterline`: validate price books, rate usage, forecast spend and backtest the forecasts
//! from the command line.

mod forecast;
mod input;
#[cfg(feature = "ops")]
mod ops_cmd;

use anyhow::{bail, Result};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use input::{instant_arg, Input};
use meterline_shared::domain::money::{format_rate, Currency};
use meterline_shared::domain::pricing::{
    rate, Catalog, LineItem, LineKind, MarketFactors, Period, RatingContext, RatingResult, Subscription,
    TaxTable, Unpriced, UnpricedReason,
};
use meterline_shared::domain::usage::generator::{
    generate, generate_collector, CollectorConfig, GeneratorConfig,
};
use rust_decimal::Decimal;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Debug, Parser)]
#[command(name = "meterline", version, about = "Usage-based billing tools")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Price book commands.
    #[command(name = "price-book")]
    PriceBook {
        #[command(subcommand)]
        command: PriceBookCommand,
    },
    /// Rate usage rows against price books and print the line items.
    Rate(RateArgs),
    /// Generate a deterministic usage workload (a JSON array of usage events).
    GenUsage(GenUsageArgs),
    /// Period-to-date, end-of-period projection and next-days forecast of an account's spend,
    /// with an optional SVG plot.
    Forecast(forecast::ForecastArgs),
    /// Forecast accuracy on rolling origins against seasonal naive (MASE, interval coverage).
    Backtest(forecast::BacktestArgs),
    /// Recoveries against a deployed or local stack (docs/operations.md): redrive a dead-letter
    /// queue, replay rejected events, re-run a close, re-run a rate refresh.
    #[cfg(feature = "ops")]
    Ops {
        #[command(subcommand)]
        command: ops_cmd::OpsCommand,
    },
}

#[derive(Debug, clap::Args)]
struct GenUsageArgs {
    /// The seed: the same seed gives the same events.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// How many events.
    #[arg(long, default_value_t = 10_000)]
    events: usize,
    /// How many customer accounts (usage is skewed towards the first).
    #[arg(long, default_value_t = 50)]
    accounts: usize,
    /// How many providers.
    #[arg(long, default_value_t = 8)]
    providers: usize,
    /// Start of the usage (RFC 3339).
    #[arg(long, default_value = "2026-11-01T00:00:00Z", value_parser = instant_arg)]
    start: DateTime<Utc>,
    /// Hours of usage after the start.
    #[arg(long, default_value_t = 24)]
    hours: i64,
    /// `marketplace` (many accounts, no time pattern: most hourly windows hold one event),
    /// `collector` (`--jobs` jobs, each running for hours and reporting its meters every 60 s,
    /// in time order; at most `--events` of them, the first) or `trend-weekly` (one account,
    /// hourly GPU and CPU usage with a known trend and daily and weekly cycles, over `--hours`).
    #[arg(long, default_value = "marketplace")]
    pattern: String,
    /// Jobs of the `collector` pattern.
    #[arg(long, default_value_t = 40)]
    jobs: usize,
    /// The account of the `trend-weekly` pattern.
    #[arg(long, default_value = "acct-demo")]
    account: String,
}

#[derive(Debug, Subcommand)]
enum PriceBookCommand {
    /// Check a price book (or a JSON array of books) and print every problem with its path.
    Validate { file: PathBuf },
}

#[derive(Debug, clap::Args)]
struct RateArgs {
    /// A price book, or a JSON array of books rated together.
    #[arg(long)]
    price_book: PathBuf,
    /// Usage rows: a JSON array or one JSON object per line; `-` reads standard input.
    #[arg(long)]
    usage: String,
    /// The subscription (plan and tax position); pay-per-use and untaxed when absent.
    #[arg(long)]
    subscription: Option<PathBuf>,
    /// Tax rates (`{"rates": [...]}`).
    #[arg(long)]
    taxes: Option<PathBuf>,
    /// Spot market factors (`{"markets": {"name": [...]}}`).
    #[arg(long)]
    market: Option<PathBuf>,
    /// Start of the period (RFC 3339); defaults to the start of the month of the earliest row.
    #[arg(long, value_parser = instant_arg)]
    from: Option<DateTime<Utc>>,
    /// End of the period, exclusive; defaults to the start of the month after the latest row.
    #[arg(long, value_parser = instant_arg)]
    to: Option<DateTime<Utc>>,
    /// Print the rating result as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Print the result even when some usage could not be priced (it is listed, never priced
    /// at zero). Without it, unpriced usage is an error (exit status 1).
    #[arg(long)]
    allow_unpriced: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = std::io::stdout().lock();
    match run(cli, &mut out) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// Exit status 1: the input was read, and what it says is not acceptable (price book
/// problems, unpriced usage). Errors (unreadable input, failures) exit with 2.
fn run(cli: Cli, out: &mut impl Write) -> Result<ExitCode> {
    match cli.command {
        Command::PriceBook {
            command: PriceBookCommand::Validate { file },
        } => match input::check_books(&Input::file(&file)?)? {
            Ok(books) => {
                let prices: usize = books.iter().map(|b| b.prices.len()).sum();
                writeln!(out, "ok: {} book(s), {prices} price(s)", books.len())?;
                Ok(ExitCode::SUCCESS)
            }
            Err(issues) => {
                for i in &issues {
                    writeln!(out, "{}: {} [{}]", i.path, i.message, i.code)?;
                }
                writeln!(out, "{} problem(s) in {}", issues.len(), file.display())?;
                Ok(ExitCode::from(1))
            }
        },
        Command::GenUsage(args) if args.pattern == "trend-weekly" => {
            let days = (args.hours.max(24) / 24) as usize;
            let events = meterline_shared::domain::forecast::synthetic_events(
                &args.account,
                "gpu-cloud",
                args.start,
                days,
                args.seed,
            );
            serde_json::to_writer(&mut *out, &events)?;
            writeln!(out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::GenUsage(args) if args.pattern == "collector" => {
            let mut events = generate_collector(&CollectorConfig {
                seed: args.seed,
                accounts: args.accounts.max(1),
                providers: args.providers.max(1),
                jobs: args.jobs.max(1),
                start: args.start,
                span: chrono::Duration::hours(args.hours.max(1)),
                interval: chrono::Duration::seconds(60),
            });
            events.truncate(args.events);
            serde_json::to_writer(&mut *out, &events)?;
            writeln!(out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::GenUsage(args) if args.pattern != "marketplace" => {
            bail!(
                "unknown pattern `{}`: expected marketplace, collector or trend-weekly",
                args.pattern
            )
        }
        Command::Forecast(args) => {
            forecast::run_forecast(&args, out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Backtest(args) => {
            forecast::run_backtest(&args, out)?;
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "ops")]
        Command::Ops { command } => {
            let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
            let ok = runtime.block_on(ops_cmd::run(command, out))?;
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        Command::GenUsage(args) => {
            let config = GeneratorConfig {
                seed: args.seed,
                accounts: args.accounts.max(1),
                providers: args.providers.max(1),
                events: args.events,
                start: args.start,
                span: chrono::Duration::hours(args.hours.max(1)),
            };
            let events = generate(&config);
            serde_json::to_writer(&mut *out, &events)?;
            writeln!(out)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Rate(args) => {
            let usage = Input::file_or_stdin(&args.usage)?;
            let result = rate_files(&args, &usage)?;
            if !result.unpriced.is_empty() && !args.allow_unpriced {
                eprintln!("{}", unpriced_error(&result.unpriced));
                return Ok(ExitCode::from(1));
            }
            if args.json {
                serde_json::to_writer_pretty(&mut *out, &result)?;
                writeln!(out)?;
            } else {
                print_table(out, &result)?;
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

#[allow(clippy::expect_used)] // Cannot fail: the template is a constant indicatif accepts.
fn progress(len: u64, what: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let pb = ProgressBar::new(len);
    pb.set_style(
        ProgressStyle::with_template("{msg} [{bar:40}] {pos}/{len} ({per_sec})")
            .expect("static template")
            .progress_chars("=> "),
    );
    pb.set_message(what.to_string());
    pb
}

#[allow(clippy::expect_used)] // Cannot fail: midnight UTC on the first of a month always exists.
fn month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(t.year(), t.month(), 1, 0, 0, 0)
        .single()
        .expect("first of a month exists")
}

#[allow(clippy::expect_used)] // Cannot fail: midnight UTC on the first of a month always exists.
fn next_month_start(t: DateTime<Utc>) -> DateTime<Utc> {
    let (y, m) = if t.month() == 12 {
        (t.year() + 1, 1)
    } else {
        (t.year(), t.month() + 1)
    };
    Utc.with_ymd_and_hms(y, m, 1, 0, 0, 0)
        .single()
        .expect("first of a month exists")
}

/// Reads a document from `path`, or the default when there is none.
fn load<T: serde::de::DeserializeOwned>(path: &Option<PathBuf>, default: impl FnOnce() -> T) -> Result<T> {
    match path {
        Some(p) => Input::file(p)?.parse(),
        None => Ok(default()),
    }
}

fn rate_files(args: &RateArgs, usage: &Input) -> Result<RatingResult> {
    let book_file = Input::file(&args.price_book)?;
    let books = input::valid_books(&book_file)?;
    let catalog = Catalog::new(books).map_err(|e| anyhow::anyhow!("{}: {e}", book_file.name))?;
    let subscription = load(&args.subscription, || Subscription::pay_per_use("-"))?;
    let taxes: TaxTable = load(&args.taxes, TaxTable::default)?;
    let market: MarketFactors = load(&args.market, MarketFactors::default)?;
    let rows = input::usage_rows(usage, |n| progress(n, "reading usage"))?;
    let first = rows.iter().map(|r| r.window_start).min();
    let last = rows.iter().map(|r| r.window_start).max();
    let period = match (
        args.from.or(first.map(month_start)),
        args.to.or(last.map(next_month_start)),
    ) {
        (Some(start), Some(end)) => Period::new(start, end),
        _ => bail!("no usage rows: give --from and --to"),
    };
    let ctx = RatingContext {
        catalog: &catalog,
        subscription: &subscription,
        taxes: &taxes,
        market: &market,
    };
    let spinner = if rows.len() > 100_000 {
        progress(1, "rating")
    } else {
        ProgressBar::hidden()
    };
    let result = rate(&ctx, &rows, period)?;
    spinner.finish_and_clear();
    Ok(result)
}

fn dims(d: &meterline_shared::domain::usage::Dimensions) -> String {
    d.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// A value's name as written in JSON (`recurring_fee`, `reverse_charge`), never a Rust name.
fn wire_name<T: serde::Serialize>(v: &T) -> String {
    match serde_json::to_value(v) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

/// The "unit price / tiers" column: the unit price of a per-unit, overage, covered or fee line;
/// the tiers with the quantity in each, the packages or the flat amount otherwise.
fn price_cell(l: &LineItem) -> String {
    // `calculation` is `<how> = <amount>` (or `= <unrounded> → <amount>`).
    let how = l.calculation.rsplit_once(" = ").map_or("", |(how, _)| how);
    let charged_by_model = !l.tiers.is_empty() || how.contains("packages") || how.starts_with("flat ");
    match l.unit_price {
        Some(p) if !charged_by_model => p.to_string(),
        _ if l.kind == LineKind::Usage => how.to_string(),
        _ => String::new(),
    }
}

/// An amount with the currency's minor units, always (`0.00`, never `0`; JPY `0`).
fn money(amount: Decimal, currency: Currency) -> String {
    let mut a = amount;
    if a.scale() < currency.minor_units() {
        a.rescale(currency.minor_units());
    }
    a.to_string()
}

fn reason(r: UnpricedReason) -> &'static str {
    match r {
        UnpricedReason::OutsidePeriod => "outside the rating period",
        UnpricedReason::NoPriceBook => "no price book in force for the provider or the marketplace",
        UnpricedReason::NoMatchingPrice => "no matching price for the meter and dimensions",
        UnpricedReason::NoMarketFactor => "no market factor for the spot price at the usage's time",
    }
}

fn unpriced_line(u: &Unpriced) -> String {
    let d = dims(&u.dimensions);
    format!(
        "{} {}{}{} quantity {} ({} row{}): {}",
        u.provider_id,
        u.meter,
        if d.is_empty() { "" } else { " " },
        d,
        u.quantity.normalize(),
        u.rows,
        if u.rows == 1 { "" } else { "s" },
        reason(u.reason)
    )
}

/// Unpriced usage is never priced at zero, and never passes silently.
fn unpriced_error(unpriced: &[Unpriced]) -> String {
    let rows: u64 = unpriced.iter().map(|u| u.rows).sum();
    let list: Vec<String> = unpriced
        .iter()
        .map(|u| format!("  {}", unpriced_line(u)))
        .collect();
    format!(
        "error: {} unpriced usage group(s) ({rows} row(s)); the total would leave them out:\n{}\n\
         give the missing prices or market factors, or pass --allow-unpriced to print the result \
         with them listed apart",
        unpriced.len(),
        list.join("\n")
    )
}

/// Net, tax (with its rate, `19 %`) and gross of a line; the tax-inclusive price is the gross.
fn amounts_cells(l: &LineItem, currency: Currency) -> [String; 3] {
    let gross = if l.tax.inclusive {
        format!("{} incl. tax", money(l.tax.gross, currency))
    } else {
        money(l.tax.gross, currency)
    };
    [
        money(l.tax.net, currency),
        format!("{} ({})", money(l.tax.tax, currency), format_rate(l.tax.rate)),
        gross,
    ]
}

fn print_table(out: &mut impl Write, r: &RatingResult) -> Result<()> {
    writeln!(
        out,
        "account {}  period {} .. {}  currency {}",
        r.account_id, r.period.start, r.period.end, r.currency
    )?;
    let header = [
        "kind",
        "provider",
        "meter",
        "dimensions",
        "quantity",
        "unit price / tiers",
        "net",
        "tax",
        "gross",
    ];
    let mut table: Vec<[String; 9]> = vec![header.map(String::from)];
    for l in &r.lines {
        let quantity = match &l.unit {
            Some(u) => format!("{} {u}", l.quantity.normalize()),
            None => l.quantity.normalize().to_string(),
        };
        let [net, tax, gross] = amounts_cells(l, r.currency);
        table.push([
            wire_name(&l.kind),
            l.provider_id.clone().unwrap_or_default(),
            l.meter.map(|m| m.to_string()).unwrap_or_default(),
            dims(&l.dimensions),
            quantity,
            price_cell(l),
            net,
            tax,
            gross,
        ]);
    }
    let widths: Vec<usize> = (0..9)
        .map(|c| table.iter().map(|row| row[c].chars().count()).max().unwrap_or(0))
        .collect();
    for (n, row) in table.iter().enumerate() {
        let cells: Vec<String> = row
            .iter()
            .enumerate()
            .map(|(c, s)| {
                if c >= 4 {
                    format!("{s:>w$}", w = widths[c])
                } else {
                    format!("{s:<w$}", w = widths[c])
                }
            })
            .collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
        if n == 0 {
            writeln!(out, "{}", "-".repeat(widths.iter().sum::<usize>() + 2 * 8))?;
        }
    }
    for u in &r.unpriced {
        writeln!(out, "unpriced: {}", unpriced_line(u))?;
    }
    writeln!(out, "subtotal {} {}", money(r.subtotal, r.currency), r.currency)?;
    for b in &r.tax_breakdown {
        let j = b
            .jurisdiction
            .as_ref()
            .map(|j| {
                format!(
                    "{}{}",
                    j.country,
                    j.region.as_ref().map(|r| format!("/{r}")).unwrap_or_default()
                )
            })
            .unwrap_or_else(|| "-".into());
        writeln!(
            out,
            "tax {j} {} {}: taxable {} tax {}",
            wire_name(&b.treatment),
            format_rate(b.rate),
            money(b.taxable, r.currency),
            money(b.tax, r.currency)
        )?;
    }
    let (tax, total) = (money(r.tax_total, r.currency), money(r.total, r.currency));
    writeln!(out, "tax {tax}  total {total} {}", r.currency)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn example(name: &str) -> String {
        format!("{}/../examples/{name}", env!("CARGO_MANIFEST_DIR"))
    }

    fn run_args(args: &[&str]) -> (ExitCode, String) {
        let cli = Cli::try_parse_from(args).expect("arguments parse");
        let mut out = Vec::new();
        let code = run(cli, &mut out).expect("runs");
        (code, String::from_utf8(out).unwrap())
    }

    #[test]
    fn gen_usage_collector_reports_each_job_every_minute() {
        let args = [
            "meterline",
            "gen-usage",
            "--pattern",
            "collector",
            "--jobs",
            "5",
            "--hours",
            "3",
            "--events",
            "400",
        ];
        let (code, out) = run_args(&args);
        assert_eq!(code, ExitCode::SUCCESS);
        let events: Vec<meterline_shared::domain::usage::UsageEvent> = serde_json::from_str(&out).unwrap();
        assert_eq!(events.len(), 400);
        assert!(events.windows(2).all(|w| w[0].timestamp <= w[1].timestamp));
        let first = &events[0];
        let next = events
            .iter()
            .find(|e| e.job_id == first.job_id && e.meter == first.meter && e.id != first.id)
            .unwrap();
        assert_eq!(next.timestamp - first.timestamp, chrono::Duration::seconds(60));
    }

    #[test]
    fn the_example_price_book_is_valid() {
        let (code, out) = run_args(&["meterline", "price-book", "validate", &example("price-book.json")]);
        assert_eq!(code, ExitCode::SUCCESS, "{out}");
        assert!(out.starts_with("ok: 1 book(s)"), "{out}");
    }

    #[test]
    fn an_invalid_book_lists_every_problem_and_fails() {
        let dir = std::env::temp_dir().join(format!("meterline-cli-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("bad.json");
        let mut book: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(example("price-book.json")).unwrap()).unwrap();
        book["currency"] = "XXX".into();
        book["prices"][0]["meter"] = "gpu_hours".into();
        std::fs::write(&file, book.to_string()).unwrap();
        let (code, out) = run_args(&["meterline", "price-book", "validate", file.to_str().unwrap()]);
        assert_eq!(code, ExitCode::from(1));
        assert!(out.contains("currency: unknown currency `XXX`"), "{out}");
        assert!(
            out.contains("prices[0].meter: unknown meter `gpu_hours`"),
            "{out}"
        );
        assert!(out.contains("2 problem(s)"), "{out}");
    }

    #[test]
    fn rates_the_examples_as_a_table_and_as_json() {
        let args = [
            "meterline",
            "rate",
            "--price-book",
            &example("price-book.json"),
            "--usage",
            &example("usage.json"),
            "--subscription",
            &example("subscription.json"),
            "--taxes",
            &example("taxes.json"),
        ];
        let (code, out) = run_args(&args);
        assert_eq!(code, ExitCode::SUCCESS);
        assert!(out.contains("subtotal"), "{out}");
        // The graduated GPU line shows its tiers with the quantity in each, not a blank.
        let gpu = out
            .lines()
            .find(|l| l.starts_with("usage") && l.contains("gpu_seconds") && !l.contains("H100"))
            .unwrap_or_else(|| panic!("{out}"));
        assert!(gpu.contains("36000 × 0.0008 + 50400 × 0.0006"), "{gpu}");
        let egress = out.lines().find(|l| l.contains("network_egress_gib")).unwrap();
        assert!(egress.contains("⌈250.5 / 100⌉ = 3 packages × 4.50"), "{egress}");
        // One rate format: `19 %`.
        assert!(out.contains("(19 %)") && out.contains("standard 19 %"), "{out}");
        assert!(!out.contains("@19%"), "{out}");
        let mut json_args = args.to_vec();
        json_args.push("--json");
        let (_, out) = run_args(&json_args);
        let r: RatingResult = serde_json::from_str(&out).unwrap();
        assert!(!r.lines.is_empty());
        assert_eq!(r.subtotal, r.lines.iter().map(|l| l.amount).sum());
        assert_eq!(r.total, r.net_total + r.tax_total);
    }

    #[test]
    fn usage_may_be_one_row_per_line() {
        let input = |text: &str| Input {
            name: "rows".into(),
            text: text.into(),
        };
        let rows = input::usage_rows(
            &input("{\"provider_id\":\"p\",\"meter\":\"cpu_seconds\",\"window_start\":\"2026-01-01T00:00:00Z\",\"quantity\":\"1\"}\n\n"),
            |_| ProgressBar::hidden(),
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        let e = input::usage_rows(&input("\n{\"meter\": 1}"), |_| ProgressBar::hidden()).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("rows:2:11: meter: invalid type: integer `1`"),
            "{e}"
        );
    }

    #[test]
    fn amounts_carry_the_currencys_minor_units() {
        let jpy = Currency::from_code("JPY").unwrap();
        assert_eq!(money(Decimal::ZERO, Currency::EUR), "0.00");
        assert_eq!(money(Decimal::new(5, 1), Currency::EUR), "0.50");
        assert_eq!(money(Decimal::new(123, 2), Currency::EUR), "1.23");
        assert_eq!(money(Decimal::ZERO, jpy), "0");
    }

    #[test]
    fn the_period_defaults_to_whole_months() {
        let t: DateTime<Utc> = "2026-12-15T10:00:00Z".parse().unwrap();
        assert_eq!(month_start(t).to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(next_month_start(t).to_rfc3339(), "2027-01-01T00:00:00+00:00");
    }
}
