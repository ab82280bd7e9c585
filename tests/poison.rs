//! Poison data in a close batch (against the local endpoint, moto_server): a corrupt stored item
//! or a panic while closing one subscription fails that one message, named in
//! `batchItemFailures`, and every other close of the batch is done.

use chrono::{DateTime, Duration, DurationRound, Utc};
use futures::future::BoxFuture;
use meterline_integration_tests::{capture_logs, sqs_event, Stack};
use meterline_shared::adapters::aws::DynamoBillingStore;
use meterline_shared::adapters::memory::InMemoryRateStore;
use meterline_shared::adapters::memory::MemoryEventPublisher;
use meterline_shared::domain::billing::{sample, Alignment, BillingSchedule, BillingSubscription, Cadence};
use meterline_shared::domain::fx::{CurrencyPair, ExchangeRate};
use meterline_shared::domain::money::Currency;
use meterline_shared::ports::billing::BillingStore;
use meterline_shared::ports::billing::CloseRequest;
use meterline_shared::ports::rates::{HistoryPage, RateStore};
use meterline_shared::ports::StoreError;
use meterline_shared::services::closing::{CloseSettings, Closer};

struct Batch {
    stack: Stack,
    billing: DynamoBillingStore,
    anchor: DateTime<Utc>,
}

impl Batch {
    async fn new(test: &str, accounts: &[(&str, Currency)]) -> Batch {
        let stack = Stack::create(test).await;
        let billing = stack.billing_store();
        billing.put_catalog(&sample::catalog()).await.unwrap();
        let anchor =
            Utc::now().duration_trunc(Duration::hours(1)).unwrap() - Duration::days(1) - Duration::hours(2);
        for (account, currency) in accounts {
            billing
                .put_account(&sample::account(account, *currency))
                .await
                .unwrap();
            let plan = sample::subscription("x", account, Cadence::Daily, anchor).plan;
            let schedule =
                BillingSchedule::new(Cadence::Daily, Alignment::Anniversary, anchor, chrono_tz::UTC);
            let sub = BillingSubscription::new(&format!("sub_{account}"), account, schedule, plan).unwrap();
            billing.put_subscription(&sub).await.unwrap();
        }
        Batch {
            stack,
            billing,
            anchor,
        }
    }

    fn messages(&self, accounts: &[&str]) -> Vec<(String, String)> {
        accounts
            .iter()
            .map(|a| {
                let r = CloseRequest {
                    account_id: a.to_string(),
                    subscription_id: format!("sub_{a}"),
                    period_end: self.anchor + Duration::days(1),
                };
                (format!("msg-{a}"), serde_json::to_string(&r).unwrap())
            })
            .collect()
    }

    async fn invoiced(&self, account: &str) -> usize {
        self.billing
            .invoices_since(account, &format!("sub_{account}"), self.anchor)
            .await
            .unwrap()
            .len()
    }
}

fn failures(resp: &aws_lambda_events::sqs::SqsBatchResponse) -> Vec<String> {
    resp.batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect()
}

#[tokio::test]
async fn a_corrupt_subscription_item_fails_its_close_alone() {
    let accounts = [
        ("acct_p1", Currency::USD),
        ("acct_p2", Currency::USD),
        ("acct_p3", Currency::USD),
    ];
    let b = Batch::new("poison-corrupt", &accounts).await;
    // The stored subscription of acct_p2 is damaged: its document is not JSON any more.
    b.stack
        .ddb()
        .update_item()
        .table_name(b.stack.resource("BillingTable"))
        .key(
            "pk",
            meterline_shared::adapters::aws::aws_sdk_dynamodb::types::AttributeValue::S(
                "ACCT#acct_p2".into(),
            ),
        )
        .key(
            "sk",
            meterline_shared::adapters::aws::aws_sdk_dynamodb::types::AttributeValue::S(
                "SUB#sub_acct_p2".into(),
            ),
        )
        .update_expression("SET doc = :d")
        .condition_expression("attribute_exists(pk)")
        .expression_attribute_values(
            ":d",
            meterline_shared::adapters::aws::aws_sdk_dynamodb::types::AttributeValue::S(
                "{\"schedule\": tru".into(),
            ),
        )
        .send()
        .await
        .expect("the subscription item exists under this key");
    let usage = b.stack.usage_store();
    let rates = InMemoryRateStore::new();
    let publisher = MemoryEventPublisher::new();
    let closer = Closer {
        billing: &b.billing,
        usage: &usage,
        rates: &rates,
        publisher: &publisher,
        settings: CloseSettings::default(),
    };
    let (_guard, logs) = capture_logs();
    let resp = close_worker::handle(
        &closer,
        sqs_event(&b.messages(&["acct_p1", "acct_p2", "acct_p3"])),
        Utc::now(),
    )
    .await;
    assert_eq!(failures(&resp), vec!["msg-acct_p2".to_string()]);
    assert_eq!(b.invoiced("acct_p1").await, 1);
    assert_eq!(b.invoiced("acct_p3").await, 1);
    assert_eq!(b.invoiced("acct_p2").await, 0);
    // The log names the item and says a retry will not help.
    let line = logs
        .lines()
        .into_iter()
        .find(|l| l["fields"]["message_id"] == "msg-acct_p2")
        .expect("a line for the failed message");
    let error = line["fields"]["error"].as_str().unwrap();
    assert!(
        error.contains("subscription sub_acct_p2 of account acct_p2"),
        "{error}"
    );
    assert_eq!(line["fields"]["retryable"], false);
}

/// Rates that panic when asked for one pair: a bug met by one close of the batch.
struct PanicsOn {
    pair: CurrencyPair,
    inner: InMemoryRateStore,
}

impl RateStore for PanicsOn {
    fn latest(&self, pair: CurrencyPair) -> BoxFuture<'_, Result<Option<ExchangeRate>, StoreError>> {
        self.inner.latest(pair)
    }
    fn rate_at(
        &self,
        pair: CurrencyPair,
        at: DateTime<Utc>,
    ) -> BoxFuture<'_, Result<Option<ExchangeRate>, StoreError>> {
        assert_ne!(pair, self.pair, "injected panic for {pair}");
        self.inner.rate_at(pair, at)
    }
    fn put<'a>(&'a self, rate: &'a ExchangeRate) -> BoxFuture<'a, Result<(), StoreError>> {
        self.inner.put(rate)
    }
    fn history<'a>(
        &'a self,
        pair: CurrencyPair,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
        cursor: Option<&'a str>,
        limit: usize,
    ) -> BoxFuture<'a, Result<HistoryPage, StoreError>> {
        self.inner.history(pair, from, to, cursor, limit)
    }
    fn latest_all(&self) -> BoxFuture<'_, Result<Vec<ExchangeRate>, StoreError>> {
        self.inner.latest_all()
    }
}

#[tokio::test]
async fn a_panic_while_closing_one_subscription_fails_that_close_alone() {
    let accounts = [
        ("acct_q1", Currency::USD),
        ("acct_qe", Currency::EUR),
        ("acct_q3", Currency::USD),
    ];
    let b = Batch::new("poison-panic", &accounts).await;
    let usage = b.stack.usage_store();
    let rates = PanicsOn {
        pair: "USD/EUR".parse().unwrap(),
        inner: InMemoryRateStore::new(),
    };
    let publisher = MemoryEventPublisher::new();
    let closer = Closer {
        billing: &b.billing,
        usage: &usage,
        rates: &rates,
        publisher: &publisher,
        settings: CloseSettings::default(),
    };
    let (_guard, logs) = capture_logs();
    let resp = close_worker::handle(
        &closer,
        sqs_event(&b.messages(&["acct_q1", "acct_qe", "acct_q3"])),
        Utc::now(),
    )
    .await;
    assert_eq!(failures(&resp), vec!["msg-acct_qe".to_string()]);
    assert_eq!(b.invoiced("acct_q1").await, 1);
    assert_eq!(b.invoiced("acct_q3").await, 1);
    assert_eq!(b.invoiced("acct_qe").await, 0);
    let line = logs
        .lines()
        .into_iter()
        .find(|l| l["fields"]["message_id"] == "msg-acct_qe")
        .expect("a line for the failed message");
    assert_eq!(line["level"], "ERROR");
    assert!(
        line["fields"]["panic"]
            .as_str()
            .unwrap()
            .contains("injected panic"),
        "{line}"
    );
    // The batch's metrics count the one failure.
    let batch = logs
        .metric_lines()
        .into_iter()
        .find(|l| l.get("ClosesDone").is_some())
        .unwrap();
    assert_eq!(batch["ClosesFailed"], 1);
    assert_eq!(batch["ClosesDone"], 2);
}
