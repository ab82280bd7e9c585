//! The Lambda handler with a scheduled EventBridge event and the mock provider.

// Test code: a failed setup should stop the test loudly.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use aws_lambda_events::eventbridge::EventBridgeEvent;
use meterline_shared::adapters::memory::InMemoryRateStore;
use rate_refresh::{handle, sources_from_config, App, Config, RateStore, Summary};
use std::sync::Arc;

const SCHEDULED_EVENT: &str = r#"{
  "version": "0",
  "id": "53dc4d37-cffa-4f76-80c9-8b7d4a4d2eaa",
  "detail-type": "Scheduled Event",
  "source": "aws.events",
  "account": "123456789012",
  "time": "2026-11-24T15:30:00Z",
  "region": "eu-west-1",
  "resources": ["arn:aws:events:eu-west-1:123456789012:rule/rate-refresh"],
  "detail": {}
}"#;

#[tokio::test]
async fn a_scheduled_event_runs_one_refresh() {
    let config = Config::mock();
    let store = Arc::new(InMemoryRateStore::new());
    let app = App {
        sources: sources_from_config(&config).unwrap(),
        config,
        store: store.clone(),
    };
    let event: EventBridgeEvent<serde_json::Value> = serde_json::from_str(SCHEDULED_EVENT).unwrap();
    let summary = handle(&app, event).await.unwrap();
    assert_eq!(
        summary,
        Summary {
            fresh: 3,
            kept_stale: 0,
            no_rate: 0,
            rejected_quotes: 0,
            source_failures: 0
        }
    );
    assert!(store.latest("ETH/USD".parse().unwrap()).await.unwrap().is_some());
}
