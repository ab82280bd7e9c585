//! Top-ups against the local endpoint (moto_server) and in memory: requested through the API
//! (a pending top-up and its `PaymentRequested`), settled by the payment-result function's
//! handler as the payment service's results arrive: a success delivered twice makes one grant,
//! a failure marks the top-up failed, a result for another account or amount changes nothing.

use aws_lambda_events::eventbridge::EventBridgeEvent;
use chrono::{DateTime, Duration, DurationRound, Utc};
use meterline_integration_tests::{api_request, body_json, on_both_backends, with_key, Backend, Stack};
use meterline_shared::adapters::memory::MemoryEventPublisher;
use meterline_shared::domain::billing::events::PaymentResult;
use meterline_shared::domain::billing::sample;
use meterline_shared::domain::money::Currency;
use meterline_shared::services::top_ups::TopUpOutcome;
use payment_result::{ResultOutcome, TopUpStores};
use serde_json::{json, Value};

struct World {
    stack: Stack,
    api: api::Api,
    now: DateTime<Utc>,
}

impl World {
    async fn new(backend: Backend, test: &str) -> World {
        let stack = Stack::on(backend, test).await;
        let billing = stack.billing();
        for account in ["acct_a", "acct_b"] {
            billing
                .put_account(&sample::account(account, Currency::USD))
                .await
                .unwrap();
        }
        let api = stack.api();
        let now = Utc::now().duration_trunc(Duration::seconds(1)).unwrap();
        World { stack, api, now }
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        let text = body.map(|b| b.to_string());
        let req = with_key(
            api_request(method, path, &[], text.as_deref()),
            meterline_integration_tests::OPERATOR_KEY,
        );
        let resp = self.api.handle(req, self.now).await;
        (resp.status().as_u16(), body_json(&resp))
    }

    /// A payment result as the payment service's rule delivers it to payment-result.
    async fn deliver(&self, detail_type: &str, detail: Value) -> ResultOutcome {
        let event: EventBridgeEvent<PaymentResult> = serde_json::from_value(json!({
            "version": "0", "id": "e-1", "detail-type": detail_type,
            "source": "meterline.payments", "account": "123456789012",
            "time": self.now.to_rfc3339(), "region": "us-east-1", "resources": [],
            "detail": detail,
        }))
        .unwrap();
        let billing = self.stack.billing_of("PaymentResultFunction");
        let top_ups = self.stack.top_ups_of("PaymentResultFunction");
        let credits = self.stack.credits_of("PaymentResultFunction");
        let stores = TopUpStores {
            top_ups: top_ups.as_ref(),
            credits: credits.as_ref(),
            pause: meterline_shared::services::credits::no_pause,
        };
        payment_result::handle_result(billing.as_ref(), &MemoryEventPublisher::new(), &stores, &event)
            .await
            .unwrap()
    }

    fn result(&self, event_id: &str, account: &str, top_up: &str, amount: &str) -> Value {
        json!({"event_id": event_id, "top_up_id": top_up, "account_id": account,
               "currency": "USD", "amount": amount, "at": self.now.to_rfc3339()})
    }
}

/// Requested, then its `PaymentSucceeded` delivered twice: one grant of the top-up's id, paid
/// credit from that payment, and the top-up `succeeded`.
async fn a_top_up_paid_twice_makes_one_grant(backend: Backend) {
    let w = World::new(backend, "top-up-twice").await;
    let ask = json!({"top_up_id": "tu_1", "amount": "50.00", "currency": "USD"});
    let (status, body) = w
        .call("POST", "/v1/accounts/acct_a/top-ups", Some(ask.clone()))
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["amount"], "50.00");
    assert_eq!(body["grant_id"], Value::Null);
    if let Some(m) = &w.stack.memory {
        let asked: Vec<_> = m
            .events
            .events()
            .into_iter()
            .filter(|e| e.detail_type == "PaymentRequested")
            .collect();
        assert_eq!(asked.len(), 1, "{asked:?}");
        assert_eq!(asked[0].detail["purpose"], "top_up");
        assert_eq!(asked[0].detail["top_up_id"], "tu_1");
        assert_eq!(asked[0].detail["amount"], "50.00");
    }
    // The same request again answers the same top-up; another amount under its id is a 409.
    let (status, again) = w.call("POST", "/v1/accounts/acct_a/top-ups", Some(ask)).await;
    assert_eq!((status, &again["requested_at"]), (201, &body["requested_at"]));
    let other = json!({"top_up_id": "tu_1", "amount": "60.00", "currency": "USD"});
    assert_eq!(
        w.call("POST", "/v1/accounts/acct_a/top-ups", Some(other)).await.0,
        409
    );

    let paid = w.result("pay_1", "acct_a", "tu_1", "50.00");
    assert_eq!(
        w.deliver("PaymentSucceeded", paid.clone()).await,
        ResultOutcome::TopUp(TopUpOutcome::Granted)
    );
    assert_eq!(
        w.deliver("PaymentSucceeded", paid).await,
        ResultOutcome::TopUp(TopUpOutcome::Duplicate)
    );
    let (status, grants) = w.call("GET", "/v1/accounts/acct_a/credit-grants", None).await;
    assert_eq!(status, 200);
    let grants = grants["data"].as_array().unwrap().clone();
    assert_eq!(grants.len(), 1, "{grants:?}");
    assert_eq!(grants[0]["grant_id"], "tu_1");
    assert_eq!(grants[0]["kind"], "paid");
    assert_eq!(
        grants[0]["source"],
        json!({"type": "top_up", "payment_id": "pay_1"})
    );
    assert_eq!(grants[0]["balance"]["available"], "50.00");
    let (_, ledger) = w.call("GET", "/v1/accounts/acct_a/credit-ledger", None).await;
    assert_eq!(ledger["data"].as_array().unwrap().len(), 1, "{ledger}");
    let (status, top_up) = w.call("GET", "/v1/accounts/acct_a/top-ups/tu_1", None).await;
    assert_eq!(status, 200);
    assert_eq!(top_up["status"], "succeeded");
    assert_eq!(top_up["payment_id"], "pay_1");
    assert_eq!(top_up["grant_id"], "tu_1");
}

/// A failure marks the top-up failed and grants nothing; results naming another account's
/// top-up, or another amount, change nothing.
async fn failed_and_mismatched_results_grant_nothing(backend: Backend) {
    let w = World::new(backend, "top-up-failed").await;
    let ask = json!({"top_up_id": "tu_2", "amount": "20.00", "currency": "USD"});
    assert_eq!(
        w.call("POST", "/v1/accounts/acct_a/top-ups", Some(ask)).await.0,
        201
    );
    let rejected = |o: ResultOutcome| matches!(o, ResultOutcome::TopUp(TopUpOutcome::Rejected(_)));
    let elsewhere = w.result("pay_x", "acct_b", "tu_2", "20.00");
    assert!(rejected(w.deliver("PaymentSucceeded", elsewhere).await));
    let less = w.result("pay_y", "acct_a", "tu_2", "19.99");
    assert!(rejected(w.deliver("PaymentSucceeded", less).await));
    let mut declined = w.result("pay_z", "acct_a", "tu_2", "20.00");
    declined["reason"] = json!("card_declined");
    assert_eq!(
        w.deliver("PaymentFailed", declined).await,
        ResultOutcome::TopUp(TopUpOutcome::Failed)
    );
    let (_, top_up) = w.call("GET", "/v1/accounts/acct_a/top-ups/tu_2", None).await;
    assert_eq!(
        (&top_up["status"], &top_up["failure"]),
        (&json!("failed"), &json!("card_declined"))
    );
    for account in ["acct_a", "acct_b"] {
        let (_, grants) = w
            .call("GET", &format!("/v1/accounts/{account}/credit-grants"), None)
            .await;
        assert_eq!(grants["data"], json!([]), "{account}");
    }
    assert_eq!(
        w.call("GET", "/v1/accounts/acct_b/top-ups/tu_2", None).await.0,
        404
    );
    assert_eq!(
        w.call("GET", "/v1/accounts/acct_a/top-ups/nope", None).await.0,
        404
    );
}

on_both_backends!(
    a_top_up_paid_twice_makes_one_grant,
    failed_and_mismatched_results_grant_nothing
);

/// A new top-up is refused (409) when the account has the most grants it may have, as an
/// operator's grant is: paid, it would be one grant more. A top-up already asked is answered.
#[tokio::test]
async fn a_new_top_up_is_refused_when_the_account_has_the_most_grants() {
    use meterline_shared::domain::credits::{CreditGrant, CreditLedger, GrantKind, GrantScope, GrantSource};
    use meterline_shared::domain::money::Money;
    let w = World::new(Backend::Memory, "top-up-limit").await;
    let ask = json!({"top_up_id": "tu_early", "amount": "5.00", "currency": "USD"});
    assert_eq!(
        w.call("POST", "/v1/accounts/acct_a/top-ups", Some(ask.clone()))
            .await
            .0,
        201
    );
    let store = w.stack.credits();
    let loaded = store.load("acct_a").await.unwrap();
    let mut ledger: CreditLedger = loaded.ledger;
    for i in 0..api::limits::MAX_GRANTS {
        let grant = CreditGrant {
            id: format!("g{i}"),
            account_id: "acct_a".into(),
            amount: Money::new(rust_decimal::Decimal::ONE, Currency::USD),
            kind: GrantKind::Promotional,
            priority: 0,
            effective_at: w.now - Duration::hours(1),
            expires_at: None,
            scope: GrantScope::default(),
            source: GrantSource::Operator { note: "many".into() },
        };
        ledger.grant(&grant, w.now - Duration::hours(1)).unwrap();
    }
    store.save(&ledger, loaded.version).await.unwrap();
    let (_, grants) = w.call("GET", "/v1/accounts/acct_a/credit-grants", None).await;
    assert_eq!(
        grants["data"].as_array().map(Vec::len),
        Some(api::limits::MAX_GRANTS)
    );
    let new = json!({"top_up_id": "tu_late", "amount": "5.00", "currency": "USD"});
    let (status, body) = w.call("POST", "/v1/accounts/acct_a/top-ups", Some(new)).await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(
        w.call("GET", "/v1/accounts/acct_a/top-ups/tu_late", None).await.0,
        404
    );
    assert_eq!(
        w.call("POST", "/v1/accounts/acct_a/top-ups", Some(ask)).await.0,
        201
    );
}
