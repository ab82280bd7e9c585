//! The runbook's recoveries (`meterline ops`, docs/operations.md), each against the local
//! endpoint (moto_server) through the same functions the command runs.

use chrono::{Duration, DurationRound, Utc};
use indicatif::ProgressBar;
use meterline_cli::ops;
use meterline_integration_tests::Stack;
use meterline_shared::adapters::aws::aws_sdk_sqs::types::QueueAttributeName;
use meterline_shared::adapters::aws::SqsUsageQueue;
use meterline_shared::adapters::memory::MemoryEventPublisher;
use meterline_shared::domain::billing::{sample, Alignment, BillingSchedule, BillingSubscription, Cadence};
use meterline_shared::domain::fx::Outcome;
use meterline_shared::domain::money::Currency;
use meterline_shared::ports::billing::BillingStore;
use meterline_shared::ports::billing::CloseRequest;
use meterline_shared::ports::rates::RateStore;
use meterline_shared::ports::usage::UsageStore;
use meterline_shared::services::closing::{CloseSettings, Closer};
use meterline_shared::services::ingest::ingest_body;
use meterline_shared::services::replay::{ReplayRequest, ReplayStatus, Selection};
use serde_json::json;
use std::collections::BTreeSet;
use std::sync::Arc;

async fn queue_depth(stack: &Stack, url: &str) -> usize {
    let out = stack
        .sqs()
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    out.attributes().unwrap()[&QueueAttributeName::ApproximateNumberOfMessages]
        .parse()
        .unwrap()
}

async fn bodies(stack: &Stack, url: &str) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    loop {
        let out = stack
            .sqs()
            .receive_message()
            .queue_url(url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .unwrap();
        if out.messages().is_empty() {
            return seen;
        }
        seen.extend(out.messages().iter().map(|m| m.body().unwrap().to_string()));
    }
}

#[tokio::test]
async fn redrive_moves_every_dead_letter_back_to_its_queue_once() {
    let stack = Stack::create("ops-redrive").await;
    let dlq = stack.resource("CloseDeadLetterQueue");
    let queue = stack.resource("CloseQueue");
    let sent: BTreeSet<String> = (0..23).map(|i| format!("{{\"n\":{i}}}")).collect();
    for body in &sent {
        stack
            .sqs()
            .send_message()
            .queue_url(&dlq)
            .message_body(body)
            .send()
            .await
            .unwrap();
    }
    assert_eq!(ops::waiting(&stack.sqs(), &dlq).await.unwrap(), 23);
    let bar = ProgressBar::hidden();
    let done = ops::redrive(&stack.sqs(), &dlq, &queue, None, &bar)
        .await
        .unwrap();
    assert_eq!(done, ops::Redriven { moved: 23, failed: 0 });
    assert_eq!(bar.position(), 23);
    assert_eq!(queue_depth(&stack, &dlq).await, 0);
    assert_eq!(bodies(&stack, &queue).await, sent);
    // Nothing left: a second run moves nothing.
    let again = ops::redrive(&stack.sqs(), &dlq, &queue, None, &bar)
        .await
        .unwrap();
    assert_eq!(again.moved, 0);
}

#[tokio::test]
async fn redrive_stops_at_its_limit() {
    let stack = Stack::create("ops-redrive-limit").await;
    let dlq = stack.resource("UsageDeadLetterQueue");
    let queue = stack.resource("UsageQueue");
    for i in 0..15 {
        stack
            .sqs()
            .send_message()
            .queue_url(&dlq)
            .message_body(format!("m{i}"))
            .send()
            .await
            .unwrap();
    }
    let done = ops::redrive(&stack.sqs(), &dlq, &queue, Some(12), &ProgressBar::hidden())
        .await
        .unwrap();
    assert_eq!(done.moved, 12);
    assert_eq!(queue_depth(&stack, &queue).await, 12);
}

#[tokio::test]
async fn replay_enqueues_the_rejected_events_valid_now_and_keeps_the_others() {
    let stack = Stack::create("ops-replay").await;
    let store = stack.usage_store();
    let settings = stack.usage_config().ingest;
    let received = Utc::now().duration_trunc(Duration::seconds(1)).unwrap();
    // Ten minutes ahead of its receipt: rejected `in_future` then, valid an hour later. The
    // negative quantity stays invalid.
    let body = json!([
        {"id": "early", "account_id": "acct_r", "provider_id": "prov_000", "job_id": "j",
         "meter": "cpu_seconds", "quantity": "5", "timestamp": (received + Duration::minutes(10)).to_rfc3339()},
        {"id": "negative", "account_id": "acct_r", "provider_id": "prov_000", "job_id": "j",
         "meter": "cpu_seconds", "quantity": "-5", "timestamp": received.to_rfc3339()},
    ]);
    let counts = ingest_body(&store, &body.to_string(), &settings, received)
        .await
        .unwrap();
    assert_eq!(counts.rejected, 2);

    let queue_url = stack.resource("UsageQueue");
    let queue = SqsUsageQueue::new(stack.sqs(), queue_url.clone());
    let request = ReplayRequest {
        selection: Selection::Filter {
            code: None,
            received_from: None,
            received_to: None,
            limit: 100,
        },
        corrections: Default::default(),
    };
    let later = received + Duration::hours(1);
    let report = ops::replay(
        &store,
        &queue,
        Some("acct_r"),
        &request,
        later,
        &settings.time_rules,
    )
    .await
    .unwrap();
    assert_eq!((report.accepted, report.rejected), (1, 1), "{report:?}");
    let accepted = report
        .results
        .iter()
        .find(|r| r.status == ReplayStatus::Accepted)
        .unwrap();
    assert_eq!(accepted.event_id.as_deref(), Some("early"));
    // The valid one went to the usage queue; the invalid one is still listed as rejected.
    let queued = bodies(&stack, &queue_url).await;
    assert_eq!(queued.len(), 1);
    assert!(queued.iter().next().unwrap().contains("\"early\""));
    let left = store.rejected_page(Some("acct_r"), None, 10).await.unwrap();
    assert_eq!(left.items.len(), 1);
    assert!(left.items[0].raw.contains("negative"));
}

#[tokio::test]
async fn a_close_that_failed_for_a_missing_rate_is_rerun_once_the_rate_is_there() {
    let stack = Stack::create("ops-close").await;
    let billing = stack.billing_store();
    billing.put_catalog(&sample::catalog()).await.unwrap();
    billing
        .put_account(&sample::account("acct_eur", Currency::EUR))
        .await
        .unwrap();
    let anchor =
        Utc::now().duration_trunc(Duration::hours(1)).unwrap() - Duration::days(1) - Duration::hours(3);
    let plan = sample::subscription("x", "acct_eur", Cadence::Daily, anchor).plan;
    let schedule = BillingSchedule::new(Cadence::Daily, Alignment::Anniversary, anchor, chrono_tz::UTC);
    let sub = BillingSubscription::new("sub_eur", "acct_eur", schedule, plan).unwrap();
    billing.put_subscription(&sub).await.unwrap();
    let usage = stack.usage_store();
    let rates = stack.rate_store();
    let publisher = MemoryEventPublisher::new();
    let closer = Closer {
        billing: &billing,
        usage: &usage,
        rates: &rates,
        publisher: &publisher,
        settings: CloseSettings::default(),
    };
    let request = CloseRequest {
        account_id: "acct_eur".into(),
        subscription_id: "sub_eur".into(),
        period_end: anchor + Duration::days(1),
    };
    // No USD/EUR rate yet: the close fails (retryably) and writes nothing.
    let err = ops::close(&closer, &request, Utc::now()).await.unwrap_err();
    assert!(
        matches!(err, ops::OpsError::Close(ref e) if e.is_retryable()),
        "{err}"
    );
    assert!(billing
        .invoices_since("acct_eur", "sub_eur", anchor)
        .await
        .unwrap()
        .is_empty());

    let at = anchor + Duration::hours(20);
    let rate = meterline_shared::domain::fx::ExchangeRate::new(
        "USD/EUR".parse().unwrap(),
        "0.9".parse().unwrap(),
        at,
        vec!["ecb".into()],
        at,
    )
    .unwrap();
    rates.put(&rate).await.unwrap();
    let report = ops::close(&closer, &request, Utc::now()).await.unwrap();
    assert_eq!(report.committed.len(), 1);
    let invoice = &report.committed[0];
    assert!(invoice.number.is_some(), "finished: numbered");
    assert_eq!(invoice.currency, Currency::EUR);
    // Run again: the period is closed once.
    let again = ops::close(&closer, &request, Utc::now()).await.unwrap();
    assert!(again.committed.is_empty());
    assert_eq!(
        billing
            .invoices_since("acct_eur", "sub_eur", anchor)
            .await
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_rate_refresh_stores_a_fresh_rate_for_every_pair() {
    let stack = Stack::create("ops-refresh").await;
    let config = rate_refresh::Config::mock();
    let pairs: Vec<_> = config.pairs.clone();
    let store = Arc::new(stack.rate_store());
    let app = rate_refresh::App {
        sources: rate_refresh::sources_from_config(&config).unwrap(),
        config,
        store: store.clone(),
    };
    for pair in &pairs {
        assert!(store.latest(*pair).await.unwrap().is_none());
    }
    let report = ops::refresh_rates(&app).await.unwrap();
    assert!(
        report.pairs.iter().all(|p| p.outcome == Outcome::Fresh),
        "{report:?}"
    );
    for pair in &pairs {
        let latest = store.latest(*pair).await.unwrap().expect("stored");
        assert!(Utc::now() - latest.as_of < Duration::minutes(5));
    }
}
