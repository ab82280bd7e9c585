//! `Idempotency-Key` through the API function's handler against the local endpoint: a retry
//! replays the first response without redoing the work, also while the first is still running;
//! a different request with the same key is a 422; concurrent identical requests do the work
//! once.

use chrono::{DateTime, Duration, DurationRound, Utc};
use meterline_integration_tests::{body_json, operator_request, with_header, with_key, Stack, OPERATOR_KEY};
use meterline_shared::adapters::aws::DynamoIdempotencyStore;
use meterline_shared::domain::access::idempotency::{fingerprint, scoped_key, StoredResponse};
use meterline_shared::ports::idempotency::{Claim, IdempotencyStore};
use serde_json::json;

fn now() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::seconds(1)).unwrap()
}

fn keyed(method: &str, path: &str, body: &str, key: &str) -> lambda_http::Request {
    with_header(
        operator_request(method, path, &[], Some(body)),
        "idempotency-key",
        key,
    )
}

fn usage_body(id: &str) -> String {
    json!([{"id": id, "account_id": "acct_i", "provider_id": "prov_1", "job_id": "job_1",
            "meter": "cpu_seconds", "quantity": "1", "timestamp": now().to_rfc3339()}])
    .to_string()
}

async fn queued(stack: &Stack) -> usize {
    let out = stack
        .sqs()
        .get_queue_attributes()
        .queue_url(stack.resource("UsageQueue"))
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
        .send()
        .await
        .unwrap();
    out.attributes().unwrap()[&aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages]
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_retry_replays_the_first_response_and_a_different_body_is_refused() {
    let stack = Stack::create("idem").await;
    let api = stack.api();
    let body = usage_body("ev-1");
    let first = api.handle(keyed("POST", "/v1/usage", &body, "k-1"), now()).await;
    assert_eq!(first.status(), 202);
    let calls = api.handler_calls();
    let again = api.handle(keyed("POST", "/v1/usage", &body, "k-1"), now()).await;
    assert_eq!(again.status(), 202);
    assert_eq!(body_json(&again), body_json(&first));
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(api.handler_calls(), calls, "the work was not done again");
    assert_eq!(queued(&stack).await, 1, "enqueued once");

    let other = api
        .handle(keyed("POST", "/v1/usage", &usage_body("ev-2"), "k-1"), now())
        .await;
    assert_eq!(other.status(), 422);
    assert_eq!(body_json(&other)["errors"][0]["field"], "Idempotency-Key");
    let elsewhere = api
        .handle(keyed("POST", "/v1/api-keys", &body, "k-1"), now())
        .await;
    assert_eq!(elsewhere.status(), 422, "same key, other route");

    // Errors are replayed too (the request was handled; retrying it cannot succeed).
    let bad = api.handle(keyed("POST", "/v1/usage", "[]", "k-2"), now()).await;
    assert_eq!(bad.status(), 400);
    let bad_again = api.handle(keyed("POST", "/v1/usage", "[]", "k-2"), now()).await;
    assert_eq!(
        (bad_again.status(), body_json(&bad_again)),
        (bad.status(), body_json(&bad))
    );

    // Keys belong to the caller: another key's identical request is its own.
    let created = api
        .handle(
            operator_request("POST", "/v1/api-keys", &[], Some(r#"{"role": "operator"}"#)),
            now(),
        )
        .await;
    let other_operator = body_json(&created)["key"].as_str().unwrap().to_string();
    let theirs = api
        .handle(
            with_key(keyed("POST", "/v1/usage", &body, "k-1"), &other_operator),
            now(),
        )
        .await;
    assert_eq!(theirs.status(), 202);
    assert!(!theirs.headers().contains_key("idempotent-replayed"));
    assert_eq!(queued(&stack).await, 2);

    // Not ASCII (API Gateway passes such header bytes through).
    let mut req = keyed("POST", "/v1/usage", &body, "x");
    req.headers_mut().insert(
        "idempotency-key",
        lambda_http::http::HeaderValue::from_bytes("×ø\u{9b}".as_bytes()).unwrap(),
    );
    let resp = api.handle(req, now()).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(body_json(&resp)["errors"][0]["field"], "Idempotency-Key");

    for bad_key in ["", &"k".repeat(256), "two words"] {
        let resp = api
            .handle(keyed("POST", "/v1/usage", &body, bad_key), now())
            .await;
        assert_eq!(resp.status(), 400, "{bad_key:?}");
        assert_eq!(body_json(&resp)["errors"][0]["field"], "Idempotency-Key");
    }
}

#[tokio::test]
async fn concurrent_identical_requests_do_the_work_once() {
    let stack = Stack::create("idemrace").await;
    let api = stack.api();
    stack.create_tenants(&["acct_race"], &[]).await;
    let body = r#"{"role": "customer", "account_id": "acct_race"}"#;
    let requests = (0..6).map(|_| api.handle(keyed("POST", "/v1/api-keys", body, "race-1"), now()));
    let responses = futures::future::join_all(requests).await;
    let first = body_json(&responses[0]);
    let mut secrets = 0;
    for r in &responses {
        assert_eq!(r.status(), 201, "{}", body_json(r));
        let mut v = body_json(r);
        // The secret is shown once: the replays show the same key without it.
        secrets += usize::from(v.as_object_mut().unwrap().remove("key").is_some());
        let mut f = first.clone();
        f.as_object_mut().unwrap().remove("key");
        assert_eq!(v, f, "every caller gets the one response");
    }
    assert_eq!(secrets, 1, "the secret is in one response only");
    assert_eq!(api.handler_calls(), 1, "exactly one request did the work");
    assert_eq!(stack.count_items("ApiKeysTable").await, 1, "one key created");
}

#[tokio::test]
async fn a_retry_waits_for_a_request_still_running_then_replays_it() {
    let stack = Stack::create("idemwait").await;
    let mut api = stack.api();
    let store = DynamoIdempotencyStore::new(stack.ddb(), stack.api_config().idempotency_table);
    let body = usage_body("ev-w");
    // A first request with this key is running (it claimed the key and has not finished).
    let caller = &OPERATOR_KEY[3..19];
    let key = scoped_key(caller, "slow-1");
    let fp = fingerprint("POST", "/v1/usage", "", body.as_bytes());
    let t = Utc::now();
    let claim = store
        .claim(&key, &fp, t, t + Duration::seconds(60), t + Duration::hours(24))
        .await
        .unwrap();
    assert_eq!(claim, Claim::Claimed);
    let first = StoredResponse {
        status: 202,
        content_type: "application/json".into(),
        body: r#"{"accepted": 1, "from": "the first request"}"#.into(),
    };
    let finish = async {
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        store.complete(&key, &fp, &first).await.unwrap();
    };
    let (resp, ()) = tokio::join!(
        api.handle(keyed("POST", "/v1/usage", &body, "slow-1"), now()),
        finish
    );
    assert_eq!(resp.status(), 202);
    assert_eq!(body_json(&resp)["from"], "the first request");
    assert_eq!(api.handler_calls(), 0, "the retry did not do the work");
    assert_eq!(queued(&stack).await, 0);

    // If the first request does not finish within the bounded wait: 409, retry later.
    api.idempotency_wait = std::time::Duration::from_millis(200);
    let key2 = scoped_key(caller, "slow-2");
    store
        .claim(&key2, &fp, t, t + Duration::seconds(60), t + Duration::hours(24))
        .await
        .unwrap();
    let resp = api
        .handle(keyed("POST", "/v1/usage", &body, "slow-2"), now())
        .await;
    assert_eq!(resp.status(), 409);
    assert_eq!(resp.headers()["retry-after"], "1");
    assert_eq!(api.handler_calls(), 0);

    // A claim whose holder died (lease over) is taken over by the same request...
    let t2 = Utc::now();
    let key3 = scoped_key(caller, "dead-1");
    store
        .claim(
            &key3,
            &fp,
            t2 - Duration::seconds(120),
            t2 - Duration::seconds(60),
            t2 + Duration::hours(23),
        )
        .await
        .unwrap();
    let resp = api
        .handle(keyed("POST", "/v1/usage", &body, "dead-1"), now())
        .await;
    assert_eq!(resp.status(), 202);
    assert_eq!(api.handler_calls(), 1);
    // ...and an expired key (24 h) is free again, whatever its request was.
    let other_fp = fingerprint("POST", "/v1/usage", "", b"[]");
    let old = t2 - Duration::hours(25);
    let key4 = scoped_key(caller, "old-1");
    store
        .claim(
            &key4,
            &other_fp,
            old,
            old + Duration::seconds(60),
            old + Duration::hours(24),
        )
        .await
        .unwrap();
    let resp = api
        .handle(keyed("POST", "/v1/usage", &body, "old-1"), now())
        .await;
    assert_eq!(resp.status(), 202);
    assert_eq!(api.handler_calls(), 2);
}
