//! `billing-admin seed-sample`: the sample price books, tax rates and fees, an account and a
//! subscription, on any billing store (the binary uses DynamoDB).

use chrono::{DateTime, Utc};
use meterline_shared::domain::billing::{sample, Alignment, BillingSchedule, BillingSubscription, Cadence};
use meterline_shared::domain::money::Currency;
use meterline_shared::ports::billing::BillingStore;
use meterline_shared::ports::directory::{DirectoryStore, Written};
use meterline_shared::ports::StoreError;

/// What to seed.
#[derive(Debug, Clone)]
pub struct SeedSample {
    pub account: String,
    pub subscription: String,
    pub cadence: Cadence,
    pub alignment: Alignment,
    pub anchor: DateTime<Utc>,
    pub currency: Currency,
    pub timezone: chrono_tz::Tz,
}

/// Why seeding failed.
#[derive(Debug, thiserror::Error)]
pub enum SeedError {
    #[error("storage: {0}")]
    Store(#[from] StoreError),
    #[error("{0}")]
    Invalid(String),
}

/// Stores the sample catalog (at the catalog's current revision, like the API), creates the
/// account if it does not exist (an existing one is kept as it is), and creates the
/// subscription, which must be new in its account: every write is conditional, so seeding never
/// overwrites what the API or an earlier seeding created. Returns the subscription.
pub async fn seed_sample<B: BillingStore + DirectoryStore>(
    store: &B,
    s: &SeedSample,
) -> Result<BillingSubscription, SeedError> {
    let mut acct = sample::account(&s.account, s.currency);
    acct.timezone = s.timezone;
    let sample_sub = sample::subscription(&s.subscription, &s.account, Cadence::Monthly, s.anchor);
    let schedule = BillingSchedule::new(s.cadence, s.alignment, s.anchor, s.timezone);
    let sub = BillingSubscription::new(&s.subscription, &s.account, schedule, sample_sub.plan)
        .map_err(|e| SeedError::Invalid(e.to_string()))?;
    let mut catalog_written = false;
    for _ in 0..5 {
        let (_, rev) = store.catalog_revision().await?;
        if store.replace_catalog(&sample::catalog(), rev).await? == Written::Yes {
            catalog_written = true;
            break;
        }
    }
    if !catalog_written {
        return Err(SeedError::Invalid("the catalog kept changing; try again".into()));
    }
    if store.create_account(&acct).await? == Written::Conflict {
        tracing::info!(account = %s.account, "account exists: kept as it is");
    }
    match store.create_subscription(&sub).await? {
        Written::Yes => Ok(sub),
        Written::Conflict => Err(SeedError::Invalid(format!(
            "account {} has a subscription {} already: nothing was overwritten",
            s.account, s.subscription
        ))),
    }
}
