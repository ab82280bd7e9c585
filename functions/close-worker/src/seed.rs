//! `billing-admin seed-sample`: the sample price books, tax rates and fees, an account and a
//! subscription, on any billing store (the binary uses DynamoDB).

use chrono::{DateTime, Utc};
use meterline_shared::billing::{sample, Alignment, BillingSchedule, BillingSubscription, Cadence};
use meterline_shared::money::Currency;
use meterline_shared::store::billing::BillingStore;
use meterline_shared::store::StoreError;

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

/// Stores the sample catalog, the account and its subscription; returns the subscription.
pub async fn seed_sample<B: BillingStore>(store: &B, s: &SeedSample) -> Result<BillingSubscription, SeedError> {
    let mut acct = sample::account(&s.account, s.currency);
    acct.timezone = s.timezone;
    let sample_sub = sample::subscription(&s.subscription, &s.account, Cadence::Monthly, s.anchor);
    let schedule = BillingSchedule::new(s.cadence, s.alignment, s.anchor, s.timezone);
    let sub = BillingSubscription::new(&s.subscription, &s.account, schedule, sample_sub.plan)
        .map_err(|e| SeedError::Invalid(e.to_string()))?;
    store.put_catalog(&sample::catalog()).await?;
    store.put_account(&acct).await?;
    store.put_subscription(&sub).await?;
    Ok(sub)
}
