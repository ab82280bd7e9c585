//! `billing-admin`: seeds and reads billing state on the configured table (`BILLING_TABLE`, and
//! the endpoint from `AWS_ENDPOINT_URL`). Used by the demo; handy against a local endpoint.
//!
//! ```sh
//! billing-admin seed-sample --account acct_0001 --subscription sub_0001 --cadence daily \
//!     --alignment anniversary --anchor 2026-11-25T00:00:00Z --currency USD
//! billing-admin invoices --account acct_0001            # JSON array
//! billing-admin statements --provider prov_000 --from 2026-11-01T00:00:00Z --to 2026-12-01T00:00:00Z
//! ```

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use close_worker::seed::{seed_sample, SeedSample};
use meterline_shared::adapters::aws::{aws_sdk_dynamodb, sdk_config, DynamoBillingStore};
use meterline_shared::adapters::config::{BillingConfig, Env};
use meterline_shared::domain::billing::{Alignment, Cadence};
use meterline_shared::domain::money::Currency;
use meterline_shared::ports::billing::BillingStore;

#[derive(Debug, Parser)]
#[command(name = "billing-admin", about = "Seed and read billing state")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Store the sample price books, tax rates and fees, an account and a subscription.
    SeedSample {
        #[arg(long)]
        account: String,
        #[arg(long)]
        subscription: String,
        #[arg(long, default_value = "monthly")]
        cadence: String,
        #[arg(long, default_value = "calendar")]
        alignment: String,
        #[arg(long)]
        anchor: DateTime<Utc>,
        #[arg(long, default_value = "USD")]
        currency: String,
        #[arg(long, default_value = "Europe/Berlin")]
        timezone: String,
    },
    /// Print an account's invoices (and credit notes) as JSON.
    Invoices {
        #[arg(long)]
        account: String,
    },
    /// Print a provider's statement entries for periods ending in [from, to) as JSON.
    Statements {
        #[arg(long)]
        provider: String,
        #[arg(long)]
        from: DateTime<Utc>,
        #[arg(long)]
        to: DateTime<Utc>,
    },
}

fn cadence(s: &str) -> anyhow::Result<Cadence> {
    serde_json::from_value(serde_json::Value::String(s.into())).with_context(|| format!("cadence `{s}`"))
}

fn alignment(s: &str) -> anyhow::Result<Alignment> {
    serde_json::from_value(serde_json::Value::String(s.into())).with_context(|| format!("alignment `{s}`"))
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = BillingConfig::from_env(&Env::process()).context("configuration")?;
    let sdk = sdk_config().await;
    let store = DynamoBillingStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table);
    match cli.command {
        Command::SeedSample {
            account,
            subscription,
            cadence: c,
            alignment: a,
            anchor,
            currency,
            timezone,
        } => {
            let currency = Currency::from_code(&currency).map_err(|e| anyhow::anyhow!("{e}"))?;
            let timezone: chrono_tz::Tz = timezone
                .parse()
                .map_err(|_| anyhow::anyhow!("unknown timezone {timezone}"))?;
            let seed = SeedSample {
                account,
                subscription,
                cadence: cadence(&c)?,
                alignment: alignment(&a)?,
                anchor,
                currency,
                timezone,
            };
            let sub = seed_sample(&store, &seed).await?;
            println!("{}", serde_json::to_string_pretty(&sub)?);
        }
        Command::Invoices { account } => {
            let mut invoices = Vec::new();
            // Every subscription's invoices: the account partition's `INV#` items.
            for sub_id in subscriptions_of(&store, &account).await? {
                invoices.extend(
                    store
                        .invoices_since(&account, &sub_id, DateTime::<Utc>::MIN_UTC)
                        .await?,
                );
            }
            let notes = store.credit_notes(&account).await?;
            println!(
                "{}",
                serde_json::to_string_pretty(
                    &serde_json::json!({"invoices": invoices, "credit_notes": notes})
                )?
            );
        }
        Command::Statements { provider, from, to } => {
            let entries = store.provider_statements(&provider, from, to).await?;
            let out: Vec<_> = entries
                .into_iter()
                .map(|(invoice_id, s)| serde_json::json!({"invoice_id": invoice_id, "statement": s}))
                .collect();
            println!("{}", serde_json::to_string_pretty(&out)?);
        }
    }
    Ok(())
}

async fn subscriptions_of(store: &DynamoBillingStore, account: &str) -> anyhow::Result<Vec<String>> {
    Ok(store.subscription_ids(account).await?)
}
