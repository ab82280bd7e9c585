//! `meterline`: validate price books, rate usage, forecast spend and backtest the forecasts
//! from the command line.

mod forecast;
#[cfg(feature = "ops")]
mod ops_cmd;

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Datelike, TimeZone, Utc};
use clap::{Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use meterline_shared::domain::pricing::{
    rate, validate_books, Catalog, LineItem, MarketFactors, Period, PriceBook, RatingContext, RatingResult,
    Subscription, TaxTable, UsageRow, ValidationIssue,
};
use meterline_shared::domain::usage::generator::{generate, GeneratorConfig};
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
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
    #[arg(long, default_value = "2026-11-01T00:00:00Z")]
    start: DateTime<Utc>,
    /// Hours of usage after the start.
    #[arg(long, default_value_t = 24)]
    hours: i64,
    /// `marketplace` (many accounts, no time pattern) or `trend-weekly` (one account, hourly
    /// GPU and CPU usage with a known trend and daily and weekly cycles, over `--hours`).
    #[arg(long, default_value = "marketplace")]
    pattern: String,
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
    #[arg(long)]
    from: Option<DateTime<Utc>>,
    /// End of the period, exclusive; defaults to the start of the month after the latest row.
    #[arg(long)]
    to: Option<DateTime<Utc>>,
    /// Print the rating result as JSON instead of a table.
    #[arg(long)]
    json: bool,
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

fn run(cli: Cli, out: &mut impl Write) -> Result<ExitCode> {
    match cli.command {
        Command::PriceBook {
            command: PriceBookCommand::Validate { file },
        } => {
            let text = read(&file)?;
            match check_books(&text)? {
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
            }
        }
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
        Command::GenUsage(args) if args.pattern != "marketplace" => {
            bail!(
                "unknown pattern `{}`: expected marketplace or trend-weekly",
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
            let usage = if args.usage == "-" {
                let mut s = String::new();
                std::io::stdin().read_to_string(&mut s)?;
                s
            } else {
                read(Path::new(&args.usage))?
            };
            let result = rate_files(&args, &usage)?;
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

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))
}

/// Parses one book or an array of books; `Err` holds every validation problem.
fn check_books(text: &str) -> Result<Result<Vec<PriceBook>, Vec<ValidationIssue>>> {
    let value: serde_json::Value = serde_json::from_str(text).context("not JSON")?;
    let single = value.is_object();
    let books: Vec<PriceBook> = if single {
        vec![serde_json::from_value(value).context("not a price book")?]
    } else {
        serde_json::from_value(value).context("not an array of price books")?
    };
    Ok(match validate_books(&books) {
        Ok(()) => Ok(books),
        Err(e) => Err(e
            .0
            .into_iter()
            .map(|mut i| {
                // A single book's paths are relative to the book itself.
                if single {
                    i.path = i.path.trim_start_matches("[0].").to_string();
                }
                i
            })
            .collect()),
    })
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

/// Reads usage rows: a JSON array, or one JSON object per line.
fn parse_rows(text: &str) -> Result<Vec<UsageRow>> {
    if text.trim_start().starts_with('[') {
        return serde_json::from_str(text).context("usage is not an array of rows");
    }
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let pb = progress(lines.len() as u64, "reading usage");
    let mut rows = Vec::with_capacity(lines.len());
    for (n, line) in lines.iter().enumerate() {
        rows.push(serde_json::from_str(line).with_context(|| format!("usage line {}", n + 1))?);
        if n % 4096 == 0 {
            pb.set_position(n as u64);
        }
    }
    pb.finish_and_clear();
    Ok(rows)
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

fn rate_files(args: &RateArgs, usage: &str) -> Result<RatingResult> {
    let books = match check_books(&read(&args.price_book)?)? {
        Ok(b) => b,
        Err(issues) => {
            let list: Vec<String> = issues
                .iter()
                .map(|i| format!("  {}: {}", i.path, i.message))
                .collect();
            bail!("invalid price book:\n{}", list.join("\n"))
        }
    };
    let catalog = Catalog::new(books).map_err(|e| anyhow::anyhow!("{e}"))?;
    let subscription: Subscription = match &args.subscription {
        Some(p) => serde_json::from_str(&read(p)?).context("subscription")?,
        None => Subscription::pay_per_use("-"),
    };
    let taxes: TaxTable = match &args.taxes {
        Some(p) => serde_json::from_str(&read(p)?).context("taxes")?,
        None => TaxTable::default(),
    };
    let market: MarketFactors = match &args.market {
        Some(p) => serde_json::from_str(&read(p)?).context("market factors")?,
        None => MarketFactors::default(),
    };
    let rows = parse_rows(usage)?;
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

fn dims(l: &LineItem) -> String {
    l.dimensions
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
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
        "unit price",
        "amount",
        "tax",
    ];
    let mut table: Vec<[String; 8]> = vec![header.map(String::from)];
    for l in &r.lines {
        table.push([
            format!("{:?}", l.kind),
            l.provider_id.clone().unwrap_or_default(),
            l.meter.map(|m| m.to_string()).unwrap_or_default(),
            dims(l),
            l.quantity.normalize().to_string(),
            l.unit_price
                .map(|p| p.normalize().to_string())
                .unwrap_or_default(),
            l.amount.to_string(),
            format!(
                "{} @{}%",
                l.tax.tax,
                (l.tax.rate * rust_decimal::Decimal::ONE_HUNDRED).normalize()
            ),
        ]);
    }
    let widths: Vec<usize> = (0..8)
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
            writeln!(out, "{}", "-".repeat(widths.iter().sum::<usize>() + 2 * 7))?;
        }
    }
    for u in &r.unpriced {
        writeln!(
            out,
            "unpriced: {} {} {:?} quantity {} ({} rows): {:?}",
            u.provider_id, u.meter, u.dimensions, u.quantity, u.rows, u.reason
        )?;
    }
    writeln!(out, "subtotal {} {}", r.subtotal, r.currency)?;
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
            "tax {j} {:?} {}: taxable {} tax {}",
            b.treatment, b.rate, b.taxable, b.tax
        )?;
    }
    writeln!(out, "tax {}  total {} {}", r.tax_total, r.total, r.currency)?;
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
            serde_json::from_str(&read(Path::new(&example("price-book.json"))).unwrap()).unwrap();
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
        let rows = parse_rows(
            "{\"provider_id\":\"p\",\"meter\":\"cpu_seconds\",\"window_start\":\"2026-01-01T00:00:00Z\",\"quantity\":\"1\"}\n\n",
        )
        .unwrap();
        assert_eq!(rows.len(), 1);
        assert!(parse_rows("{\"meter\": 1}").is_err());
    }

    #[test]
    fn the_period_defaults_to_whole_months() {
        let t: DateTime<Utc> = "2026-12-15T10:00:00Z".parse().unwrap();
        assert_eq!(month_start(t).to_rfc3339(), "2026-12-01T00:00:00+00:00");
        assert_eq!(next_month_start(t).to_rfc3339(), "2027-01-01T00:00:00+00:00");
    }
}
