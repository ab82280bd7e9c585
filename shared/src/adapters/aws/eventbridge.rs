//! The [`EventPublisher`] on EventBridge: `PutEvents`, 10 entries per call, source
//! `meterline.billing`. Entries EventBridge reports as failed are sent again; consumers dedupe
//! on each event's `event_id`.

use crate::domain::billing::events::{BillingEvent, SOURCE};
use crate::ports::billing::EventPublisher;
use crate::ports::StoreError;
use aws_sdk_eventbridge::error::DisplayErrorContext;
use aws_sdk_eventbridge::types::PutEventsRequestEntry;
use aws_sdk_eventbridge::Client;
use futures::future::BoxFuture;

const MAX_ENTRIES: usize = 10;
const MAX_ATTEMPTS: u32 = 4;

pub struct EventBridgePublisher {
    client: Client,
    bus: String,
}

impl EventBridgePublisher {
    pub fn new(client: Client, bus: String) -> Self {
        EventBridgePublisher { client, bus }
    }
}

impl EventPublisher for EventBridgePublisher {
    fn publish<'a>(&'a self, events: &'a [BillingEvent]) -> BoxFuture<'a, Result<(), StoreError>> {
        Box::pin(async move {
            for chunk in events.chunks(MAX_ENTRIES) {
                let mut pending: Vec<&BillingEvent> = chunk.iter().collect();
                let mut attempt = 0;
                while !pending.is_empty() {
                    let entries: Vec<PutEventsRequestEntry> = pending
                        .iter()
                        .map(|e| {
                            PutEventsRequestEntry::builder()
                                .source(e.source.as_deref().unwrap_or(SOURCE))
                                .detail_type(&e.detail_type)
                                .detail(e.detail.to_string())
                                .event_bus_name(&self.bus)
                                .build()
                        })
                        .collect();
                    let out = self
                        .client
                        .put_events()
                        .set_entries(Some(entries))
                        .send()
                        .await
                        .map_err(|e| StoreError::Unavailable(DisplayErrorContext(&e).to_string()))?;
                    if out.failed_entry_count() == 0 {
                        break;
                    }
                    // Results are in request order: keep the failed ones.
                    let results = out.entries();
                    pending = pending
                        .into_iter()
                        .enumerate()
                        .filter(|(i, _)| results.get(*i).is_none_or(|r| r.error_code().is_some()))
                        .map(|(_, e)| e)
                        .collect();
                    attempt += 1;
                    if attempt >= MAX_ATTEMPTS {
                        return Err(StoreError::Unavailable(format!(
                            "{} events could not be published",
                            pending.len()
                        )));
                    }
                    super::backoff(attempt).await;
                }
            }
            Ok(())
        })
    }
}
