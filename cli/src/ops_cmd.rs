//! `meterline ops ...`: argument parsing and configuration of the recoveries in
//! [`meterline_cli::ops`]. The stack is named by the functions' own environment variables
//! (`scripts/stack_env.py` prints them for a deployed or a local stack); AWS credentials, region
//! and `AWS_ENDPOINT_URL` come from the environment as for every AWS SDK.

use anyhow::{bail, Context, Result};
use chrono::{DateTime, Utc};
use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use meterline_cli::ops;
use meterline_shared::adapters::aws::{
    aws_sdk_dynamodb, aws_sdk_eventbridge, aws_sdk_sqs, sdk_config, DynamoBillingStore, DynamoRateStore,
    DynamoUsageStore, EventBridgePublisher, SqsUsageQueue,
};
use meterline_shared::adapters::config::{BillingConfig, Env, RatesConfig, UsageConfig};
use meterline_shared::ports::billing::CloseRequest;
use meterline_shared::services::closing::{CloseSettings, Closer};
use meterline_shared::services::replay::{ReplayRequest, Selection, MAX_REPLAY_EVENTS};
use std::io::Write;
use std::sync::Arc;

#[derive(Debug, Subcommand)]
pub enum OpsCommand {
    /// Move the messages of a dead-letter queue back to its source queue (`usage` or `close`),
    /// from `USAGE_DLQ_URL` to `USAGE_QUEUE_URL`, or `CLOSE_DLQ_URL` to `CLOSE_QUEUE_URL`.
    Redrive {
        #[arg(long)]
        queue: String,
        /// Move at most this many.
        #[arg(long)]
        limit: Option<usize>,
    },
    /// Validate rejected events again with the current rules and enqueue those valid now.
    ReplayRejected {
        /// The account whose rejected events to replay; without it, those whose account could not
        /// be read.
        #[arg(long)]
        account: Option<String>,
        /// Only events rejected with this error code (e.g. `in_future`).
        #[arg(long)]
        code: Option<String>,
        /// Only events received at or after this time (RFC 3339).
        #[arg(long)]
        from: Option<DateTime<Utc>>,
        /// Only events received before this time (RFC 3339).
        #[arg(long)]
        to: Option<DateTime<Utc>>,
        /// At most this many events per run (1-100).
        #[arg(long, default_value_t = MAX_REPLAY_EVENTS)]
        limit: usize,
    },
    /// Close a subscription's ended periods now (as the close worker does for a close request).
    Close {
        #[arg(long)]
        account: String,
        #[arg(long)]
        subscription: String,
        /// The end of the period to close (the subscription's `next_close_at`); default now.
        #[arg(long)]
        period_end: Option<DateTime<Utc>>,
    },
    /// Run one exchange-rate refresh with the `FX_*` configuration, as the schedule would.
    RefreshRates,
}

pub async fn run(command: OpsCommand, out: &mut impl Write) -> Result<bool> {
    let env = Env::process();
    let sdk = sdk_config().await;
    match command {
        OpsCommand::Redrive { queue, limit } => {
            let (dlq, target) = match queue.as_str() {
                "usage" => ("USAGE_DLQ_URL", "USAGE_QUEUE_URL"),
                "close" => ("CLOSE_DLQ_URL", "CLOSE_QUEUE_URL"),
                other => bail!("unknown queue `{other}`: expected usage or close"),
            };
            let dlq = env.required(dlq).context("configuration")?;
            let target = env.required(target).context("configuration")?;
            let sqs = aws_sdk_sqs::Client::new(&sdk);
            let waiting = ops::waiting(&sqs, &dlq).await?;
            let bar = progress(limit.map_or(waiting, |l| waiting.min(l as u64)), "messages");
            let done = ops::redrive(&sqs, &dlq, &target, limit, &bar).await?;
            bar.finish_and_clear();
            writeln!(
                out,
                "moved {} message(s) from {dlq} to {target}; {} failed",
                done.moved, done.failed
            )?;
            Ok(done.failed == 0)
        }
        OpsCommand::ReplayRejected {
            account,
            code,
            from,
            to,
            limit,
        } => {
            let usage = UsageConfig::from_env(&env).context("configuration")?;
            let queue_url = env.required("USAGE_QUEUE_URL").context("configuration")?;
            let store = DynamoUsageStore::new(
                aws_sdk_dynamodb::Client::new(&sdk),
                usage.tables,
                usage.event_retention,
            );
            let queue = SqsUsageQueue::new(aws_sdk_sqs::Client::new(&sdk), queue_url);
            let request = ReplayRequest {
                selection: Selection::Filter {
                    code,
                    received_from: from,
                    received_to: to,
                    limit: limit.clamp(1, MAX_REPLAY_EVENTS),
                },
                corrections: Default::default(),
            };
            let report = ops::replay(
                &store,
                &queue,
                account.as_deref(),
                &request,
                Utc::now(),
                &usage.ingest.time_rules,
            )
            .await?;
            serde_json::to_writer_pretty(&mut *out, &report)?;
            writeln!(out)?;
            if report.more {
                writeln!(out, "more rejected events match: run again")?;
            }
            Ok(true)
        }
        OpsCommand::Close {
            account,
            subscription,
            period_end,
        } => {
            let billing = BillingConfig::from_env(&env).context("configuration")?;
            let usage = UsageConfig::from_env(&env).context("configuration")?;
            let rates = RatesConfig::from_env(&env).context("configuration")?;
            let ddb = aws_sdk_dynamodb::Client::new(&sdk);
            let billing_store = DynamoBillingStore::new(ddb.clone(), billing.table);
            let usage_store = DynamoUsageStore::new(ddb.clone(), usage.tables, usage.event_retention);
            let rate_store = DynamoRateStore::new(ddb, rates.table);
            let publisher =
                EventBridgePublisher::new(aws_sdk_eventbridge::Client::new(&sdk), billing.event_bus);
            let closer = Closer {
                billing: &billing_store,
                usage: &usage_store,
                rates: &rate_store,
                publisher: &publisher,
                settings: CloseSettings {
                    late_usage_lookback: billing.late_usage_lookback,
                    ..CloseSettings::default()
                },
            };
            let now = Utc::now();
            let request = CloseRequest {
                account_id: account,
                subscription_id: subscription,
                period_end: period_end.unwrap_or(now),
            };
            let report = ops::close(&closer, &request, now).await?;
            for inv in &report.committed {
                writeln!(
                    out,
                    "{} {} {} .. {} total {} {}",
                    inv.invoice_id,
                    inv.number.as_deref().unwrap_or("(draft)"),
                    inv.period.start,
                    inv.period.end,
                    inv.total,
                    inv.currency.code()
                )?;
            }
            writeln!(
                out,
                "{} period(s) closed, {} already closed",
                report.committed.len(),
                report.already_closed
            )?;
            Ok(true)
        }
        OpsCommand::RefreshRates => {
            let rates = RatesConfig::from_env(&env).context("configuration")?;
            let config = rate_refresh::Config::from_env().context("configuration")?;
            let app = rate_refresh::App {
                sources: rate_refresh::sources_from_config(&config).context("rate sources")?,
                config,
                store: Arc::new(DynamoRateStore::new(
                    aws_sdk_dynamodb::Client::new(&sdk),
                    rates.table,
                )),
            };
            let report = ops::refresh_rates(&app).await?;
            for p in &report.pairs {
                writeln!(
                    out,
                    "{} {:?} {}",
                    p.pair,
                    p.outcome,
                    p.rate.as_ref().map_or("-".to_string(), |r| r.rate.to_string())
                )?;
            }
            Ok(report
                .pairs
                .iter()
                .all(|p| p.outcome == meterline_shared::domain::fx::Outcome::Fresh))
        }
    }
}

fn progress(len: u64, what: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    if let Ok(style) = ProgressStyle::with_template(&format!("{{bar:40}} {{pos}}/{{len}} {what} {{elapsed}}"))
    {
        bar.set_style(style);
    }
    bar
}
