//! Spend control after a draw-down: the account's limits checked against what the period has
//! drawn and its balance ([`check_spend`]); each crossing's key claimed in the store and the
//! event published only for claims won, so it is announced once however many batches (and
//! instances) see it. Events a failed publish left unsent are sent first, by the account's
//! next batch (at least once: an event keeps its id).

use super::{DrawFailure, PeriodDraw};
use crate::domain::billing::BillingEvent;
use crate::domain::credits::{check_spend, CreditLedger, SpendEvent, SpendState, SPEND_EVENT_SOURCE};
use crate::domain::pricing::Period;
use crate::ports::billing::EventPublisher;
use crate::ports::spend::SpendStore;

/// Where limits and claims live, and where events go.
pub struct SpendControl<'a> {
    pub store: &'a dyn SpendStore,
    pub publisher: &'a dyn EventPublisher,
}

/// The EventBridge event: source `meterline.credits`, the event as detail (with `event_id`).
#[allow(clippy::expect_used)] // Cannot fail: the derived Serialize of the event cannot fail.
pub fn spend_event(event: &SpendEvent) -> BillingEvent {
    BillingEvent {
        source: Some(SPEND_EVENT_SOURCE.to_string()),
        detail_type: event.detail_type().to_string(),
        detail: serde_json::to_value(event).expect("the event serializes"),
    }
}

impl SpendControl<'_> {
    /// Sends what is left unsent for the account, then announces the draw's new crossings.
    /// Returns the events this call published.
    pub async fn check(
        &self,
        draw: &PeriodDraw,
        ledger: &CreditLedger,
    ) -> Result<Vec<SpendEvent>, DrawFailure> {
        let mut published = Vec::new();
        for e in self.store.unsent_spend_events(&draw.account_id).await? {
            self.publish(&e).await?;
            published.push(e);
        }
        let limits = self.store.spend_limits(&draw.account_id).await?;
        let state = SpendState {
            account_id: &draw.account_id,
            period: Period::new(draw.period.start, draw.period.end),
            currency: draw.currency,
            spend: draw.drawn,
            balance: draw.balance,
            holds: ledger.holds().collect(),
        };
        for e in check_spend(limits.as_ref(), &state) {
            if published.iter().any(|p| p.event_id() == e.event_id()) {
                continue;
            }
            if self.store.claim_spend_event(&e).await? {
                self.publish(&e).await?;
                tracing::info!(account_id = %draw.account_id, event = e.detail_type(), event_id = e.event_id(), "spend event published");
                published.push(e);
            }
        }
        Ok(published)
    }

    async fn publish(&self, e: &SpendEvent) -> Result<(), DrawFailure> {
        self.publisher.publish(&[spend_event(e)]).await?;
        self.store.spend_event_sent(e).await?;
        Ok(())
    }
}
