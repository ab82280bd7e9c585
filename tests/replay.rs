//! Replay of rejected events through the API function's handler and the ingestion function's
//! handler on the local endpoint: fixed events are counted once however often the replay is
//! repeated, still-invalid ones stay listed, and a customer key replays only its own account.

use chrono::{DateTime, Duration, DurationRound, Utc};
use meterline_integration_tests::{
    api_request, body_json, operator_request, pump, sqs_event, with_key, Stack,
};
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::str::FromStr;
use usage_ingest::Ingestor;

#[path = "support/schema.rs"]
mod schema;

fn now() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::seconds(1)).unwrap()
}

fn event(id: &str, account: &str, meter: &str, quantity: &str, at: DateTime<Utc>) -> Value {
    json!({"id": id, "account_id": account, "provider_id": "prov_1", "job_id": "job_1",
           "meter": meter, "quantity": quantity, "timestamp": at.to_rfc3339(),
           "dimensions": {"gpu_model": "H100"}})
}

const ACCOUNT: &str = "acct_replay";
const OTHER: &str = "acct_other";

async fn rejected(api: &api::Api, at: DateTime<Utc>) -> Vec<Value> {
    let resp = api
        .handle(
            operator_request(
                "GET",
                &format!("/v1/accounts/{ACCOUNT}/usage/rejected"),
                &[],
                None,
            ),
            at,
        )
        .await;
    assert_eq!(resp.status(), 200);
    body_json(&resp)["data"].as_array().unwrap().clone()
}

fn statuses(report: &Value) -> Vec<String> {
    report["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn fixed_events_replay_once_broken_ones_stay_and_tenants_are_kept_apart() {
    let stack = Stack::create("replay").await;
    let api = stack.api();
    stack.create_tenants(&[ACCOUNT], &[]).await;
    let ingestor = Ingestor {
        store: std::sync::Arc::new(stack.usage_store_of("UsageIngestFunction")),
        settings: stack.usage_config().ingest,
    };
    let queue = stack.resource("UsageQueue");
    let t0 = now();

    // A collector with a fast clock (10 minutes ahead), a typo in a meter, a negative quantity,
    // and another account's typo: all rejected by the ingestion function.
    let body = json!([
        event("early", ACCOUNT, "gpu_seconds", "100", t0 + Duration::minutes(10)),
        event("typo", ACCOUNT, "gpu_secs", "20", t0 - Duration::hours(1)),
        event("broken", ACCOUNT, "gpu_seconds", "-3", t0 - Duration::hours(1)),
        event("theirs", OTHER, "gpu_secs", "7", t0 - Duration::hours(1)),
    ]);
    let out = ingestor
        .handle(sqs_event(&[("m1".into(), body.to_string())]), t0)
        .await;
    assert!(out.batch_item_failures.is_empty());
    let listed = rejected(&api, t0).await;
    assert_eq!(listed.len(), 3);
    let fp = |id: &str| -> String {
        listed
            .iter()
            .find(|r| r["event_id"] == id)
            .unwrap_or_else(|| panic!("{id} is not listed"))["fingerprint"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (early, typo, broken) = (fp("early"), fp("typo"), fp("broken"));

    // A customer key of the account.
    let resp = api
        .handle(
            operator_request(
                "POST",
                "/v1/api-keys",
                &[],
                Some(&json!({"role": "customer", "account_id": ACCOUNT}).to_string()),
            ),
            t0,
        )
        .await;
    assert_eq!(resp.status(), 201);
    let customer = body_json(&resp)["key"].as_str().unwrap().to_string();
    let replay = |account: &str, key: &str, body: &Value| {
        with_key(
            api_request(
                "POST",
                &format!("/v1/accounts/{account}/usage/rejected/replay"),
                &[],
                Some(&body.to_string()),
            ),
            key,
        )
    };

    // Another account's events are a 404 for the customer; corrections are the operator's.
    let resp = api.handle(replay(OTHER, &customer, &json!({})), t0).await;
    assert_eq!(resp.status(), 404);
    let with_fix = json!({"fingerprints": [typo],
                          "corrections": {typo.clone(): event("typo", ACCOUNT, "gpu_seconds", "20", t0 - Duration::hours(1))}});
    let resp = api.handle(replay(ACCOUNT, &customer, &with_fix), t0).await;
    assert_eq!(resp.status(), 400);
    assert_eq!(body_json(&resp)["errors"][0]["field"], "corrections");

    // Right away, the early event is still in the future: it stays, with its reason.
    let resp = api
        .handle(replay(ACCOUNT, &customer, &json!({"code": "in_future"})), t0)
        .await;
    assert_eq!(resp.status(), 200);
    let report = body_json(&resp);
    assert_eq!(statuses(&report), ["rejected"]);
    assert_eq!(report["results"][0]["errors"][0]["field"], "timestamp");

    // An hour later the clock has caught up (the customer replays it), and the operator sends
    // the corrected typo and replays the broken one unchanged. Both replays are repeated.
    let t1 = t0 + Duration::hours(1);
    let by_operator = json!({"fingerprints": [typo, broken],
                             "corrections": {typo.clone(): event("typo", ACCOUNT, "gpu_seconds", "20", t0 - Duration::hours(1))}});
    for round in 0..2 {
        let resp = api
            .handle(replay(ACCOUNT, &customer, &json!({"fingerprints": [early]})), t1)
            .await;
        assert_eq!(resp.status(), 200);
        let report = body_json(&resp);
        let expected = if round == 0 { "accepted" } else { "not_found" };
        assert_eq!(statuses(&report), [expected], "{report}");

        let resp = api
            .handle(
                operator_request(
                    "POST",
                    &format!("/v1/accounts/{ACCOUNT}/usage/rejected/replay"),
                    &[],
                    Some(&by_operator.to_string()),
                ),
                t1,
            )
            .await;
        assert_eq!(resp.status(), 200);
        let report = body_json(&resp);
        let expected = if round == 0 { "accepted" } else { "not_found" };
        assert_eq!(statuses(&report), [expected, "rejected"], "{report}");
        assert_eq!(report["results"][0]["corrected"], round == 0);
        let doc = body_json(
            &api.handle(api_request("GET", "/openapi.json", &[], None), t1)
                .await,
        );
        let path = "/v1/accounts/{account_id}/usage/rejected/replay";
        let problems = schema::violations(&doc, &schema::response_schema(&doc, path, "post", "200"), &report);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(report["results"][1]["errors"][0]["field"], "quantity");
        assert_eq!(report["results"][1]["errors"][0]["code"], "negative");

        pump(&stack.sqs(), &queue, 10, |e| ingestor.handle(e, t1)).await;
    }

    // Counted once each, through the normal ingestion path.
    let resp = api
        .handle(
            operator_request(
                "GET",
                &format!("/v1/accounts/{ACCOUNT}/usage"),
                &[
                    ("granularity", "day"),
                    ("from", &(t0 - Duration::days(2)).to_rfc3339()),
                    ("to", &(t0 + Duration::days(2)).to_rfc3339()),
                ],
                None,
            ),
            t1,
        )
        .await;
    assert_eq!(resp.status(), 200);
    let rows = body_json(&resp)["data"].as_array().unwrap().clone();
    let total: Decimal = rows
        .iter()
        .map(|r| Decimal::from_str(r["quantity"].as_str().unwrap()).unwrap())
        .sum();
    let count: u64 = rows.iter().map(|r| r["event_count"].as_u64().unwrap()).sum();
    assert_eq!((total, count), (Decimal::from(120), 2));

    // Only the broken one is still listed; the other account's is untouched.
    let left = rejected(&api, t1).await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0]["event_id"], "broken");
    assert_eq!(left[0]["errors"][0]["code"], "negative");
    let resp = api
        .handle(
            operator_request("GET", &format!("/v1/accounts/{OTHER}/usage/rejected"), &[], None),
            t1,
        )
        .await;
    assert_eq!(body_json(&resp)["data"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn an_operator_replays_unknown_account_events_with_a_correction() {
    let stack = Stack::create("replay-unknown").await;
    let api = stack.api();
    let ingestor = Ingestor {
        store: std::sync::Arc::new(stack.usage_store_of("UsageIngestFunction")),
        settings: stack.usage_config().ingest,
    };
    let t0 = now();
    let mut bad = event("lost", "not an account!", "cpu_seconds", "5", t0);
    ingestor
        .handle(sqs_event(&[("m1".into(), bad.to_string())]), t0)
        .await;
    let resp = api
        .handle(operator_request("GET", "/v1/usage/rejected", &[], None), t0)
        .await;
    let listed = body_json(&resp)["data"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 1);
    let fp = listed[0]["fingerprint"].as_str().unwrap().to_string();
    bad["account_id"] = json!(ACCOUNT);
    let body = json!({"fingerprints": [fp], "corrections": {fp.clone(): bad}});
    let resp = api
        .handle(
            operator_request("POST", "/v1/usage/rejected/replay", &[], Some(&body.to_string())),
            t0,
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(statuses(&body_json(&resp)), ["accepted"]);
    pump(&stack.sqs(), &stack.resource("UsageQueue"), 10, |e| {
        ingestor.handle(e, t0)
    })
    .await;
    assert_eq!(stack.count_items("UsageEventsTable").await, 1);
    let resp = api
        .handle(operator_request("GET", "/v1/usage/rejected", &[], None), t0)
        .await;
    assert!(body_json(&resp)["data"].as_array().unwrap().is_empty());
}
