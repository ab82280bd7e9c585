//! The API function's handler against the local endpoint, fed API Gateway HTTP API events.

use chrono::{DateTime, Duration, DurationRound, Utc};
use meterline_integration_tests::{
    api_request, body_json, on_both_backends, operator_request, Backend, Stack,
};
use meterline_shared::domain::usage::generator::{generate, GeneratorConfig};
use meterline_shared::domain::usage::UsageEvent;
use meterline_shared::services::ingest::ingest_body;
use rust_decimal::Decimal;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::str::FromStr;

fn now() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::seconds(1)).unwrap()
}

fn api(stack: &Stack) -> api::Api {
    stack.api()
}

fn event(id: &str, quantity: &str) -> Value {
    json!({"id": id, "account_id": "acct_api", "provider_id": "prov_1", "job_id": "job_1",
           "meter": "gpu_seconds", "quantity": quantity, "timestamp": now().to_rfc3339(),
           "dimensions": {"gpu_model": "H100"}})
}

#[tokio::test]
async fn health_reports_the_tables() {
    let stack = Stack::create("health").await;
    let api = api(&stack);
    let resp = api.handle(api_request("GET", "/health", &[], None), now()).await;
    assert_eq!(resp.status(), 200);
    assert_eq!(body_json(&resp)["status"], "ok");
    stack
        .ddb()
        .delete_table()
        .table_name(stack.resource("RejectedEventsTable"))
        .send()
        .await
        .unwrap();
    let resp = api.handle(api_request("GET", "/health", &[], None), now()).await;
    assert_eq!(resp.status(), 503);
    assert!(body_json(&resp)["detail"]
        .as_str()
        .unwrap()
        .contains("RejectedEventsTable"));
}

#[tokio::test]
async fn posted_usage_is_validated_and_only_valid_events_are_enqueued() {
    let stack = Stack::create("post").await;
    let api = api(&stack);
    let body = json!([
        event("e1", "10.5"),
        event("e2", "-1"),
        event("e1", "10.5"),
        event("e3", "0.000000000001")
    ]);
    let resp = api
        .handle(
            operator_request("POST", "/v1/usage", &[], Some(&body.to_string())),
            now(),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let out = body_json(&resp);
    assert_eq!(
        (
            out["accepted"].as_u64(),
            out["rejected"].as_u64(),
            out["duplicate"].as_u64()
        ),
        (Some(2), Some(1), Some(1))
    );
    let statuses: Vec<&str> = out["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["accepted", "rejected", "duplicate", "accepted"]);
    assert_eq!(out["results"][1]["errors"][0]["field"], "quantity");

    let queue = stack.resource("UsageQueue");
    let msgs = stack
        .sqs()
        .receive_message()
        .queue_url(&queue)
        .max_number_of_messages(10)
        .send()
        .await
        .unwrap();
    assert_eq!(msgs.messages().len(), 1);
    let queued: Vec<UsageEvent> = serde_json::from_str(msgs.messages()[0].body().unwrap()).unwrap();
    let ids: Vec<&str> = queued.iter().map(|e| e.id.as_str()).collect();
    assert_eq!(ids, ["e1", "e3"]);
    assert_eq!(queued[1].quantity, Decimal::from_str("0.000000000001").unwrap());
}

async fn bad_requests_get_problems_naming_the_field(backend: Backend) {
    let stack = Stack::on(backend, "problems").await;
    let api = api(&stack);
    let cases: Vec<(lambda_http::Request, u16, &str)> = vec![
        (
            operator_request("POST", "/v1/usage", &[], Some("{not json")),
            400,
            "body",
        ),
        (
            operator_request("POST", "/v1/usage", &[], Some("[]")),
            400,
            "body",
        ),
        (
            operator_request(
                "POST",
                "/v1/usage",
                &[],
                Some(&json!([event("x", "abc")]).to_string()),
            ),
            422,
            "[0].quantity",
        ),
        (
            operator_request("GET", "/v1/accounts/acct_api/usage", &[("limit", "0")], None),
            400,
            "limit",
        ),
        (
            operator_request("GET", "/v1/accounts/acct_api/usage", &[("limit", "1001")], None),
            400,
            "limit",
        ),
        (
            operator_request(
                "GET",
                "/v1/accounts/acct_api/usage",
                &[("granularity", "week")],
                None,
            ),
            400,
            "granularity",
        ),
        (
            operator_request(
                "GET",
                "/v1/accounts/acct_api/usage",
                &[("meter", "gpu_hours")],
                None,
            ),
            400,
            "meter",
        ),
        (
            operator_request(
                "GET",
                "/v1/accounts/acct_api/usage",
                &[("from", "yesterday")],
                None,
            ),
            400,
            "from",
        ),
        (
            operator_request(
                "GET",
                "/v1/accounts/acct_api/usage",
                &[("from", "2026-11-02T00:00:00Z"), ("to", "2026-11-01T00:00:00Z")],
                None,
            ),
            400,
            "from",
        ),
        (
            operator_request(
                "GET",
                "/v1/accounts/acct_api/usage",
                &[("cursor", "bm90IGEgY3Vyc29y")],
                None,
            ),
            400,
            "cursor",
        ),
        (
            operator_request(
                "GET",
                "/v1/accounts/acct_api/usage",
                &[("group_by", "Region")],
                None,
            ),
            400,
            "group_by",
        ),
        (
            operator_request("GET", "/v1/accounts/bad%20id/usage", &[], None),
            400,
            "account_id",
        ),
        (
            operator_request(
                "GET",
                "/v1/accounts/acct_api/usage/rejected",
                &[("cursor", "!!")],
                None,
            ),
            400,
            "cursor",
        ),
    ];
    for (req, status, field) in cases {
        let resp = api.handle(req, now()).await;
        assert_eq!(resp.status(), status, "{field}: {:?}", body_json(&resp));
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        let p = body_json(&resp);
        assert_eq!(p["status"], status);
        assert_eq!(p["errors"][0]["field"], field, "{p}");
    }
    let big = "x".repeat(api::MAX_BODY_BYTES + 1);
    let resp = api
        .handle(operator_request("POST", "/v1/usage", &[], Some(&big)), now())
        .await;
    assert_eq!(resp.status(), 413);
    let resp = api
        .handle(api_request("GET", "/v1/nothing", &[], None), now())
        .await;
    assert_eq!(resp.status(), 404);
    let resp = api
        .handle(api_request("DELETE", "/v1/usage", &[], None), now())
        .await;
    assert_eq!(resp.status(), 405);
}

#[tokio::test]
async fn usage_pagination_visits_every_row_exactly_once() {
    let stack = Stack::create("paging").await;
    let api = api(&stack);
    let config = stack.usage_config();
    let events = generate(&GeneratorConfig {
        seed: 11,
        accounts: 1,
        providers: 3,
        events: 1500,
        start: now() - Duration::hours(20),
        span: Duration::hours(18),
    });
    let account = events[0].account_id.clone();
    // Stored as the ingestion function stores it.
    let ingest_store = stack.usage_store_of("UsageIngestFunction");
    for chunk in events.chunks(500) {
        ingest_body(
            &ingest_store,
            &serde_json::to_string(chunk).unwrap(),
            &config.ingest,
            now(),
        )
        .await
        .unwrap();
    }
    let from = (now() - Duration::days(1)).to_rfc3339();
    let to = (now() + Duration::hours(1)).to_rfc3339();
    let path = format!("/v1/accounts/{account}/usage");
    let fetch_all = |limit: &'static str, group_by: Option<&'static str>| {
        let (api, path, from, to) = (&api, path.clone(), from.clone(), to.clone());
        async move {
            let mut rows = Vec::new();
            let mut cursor: Option<String> = None;
            let mut pages = 0;
            loop {
                let mut q = vec![("from", from.as_str()), ("to", to.as_str()), ("limit", limit)];
                if let Some(g) = group_by {
                    q.push(("group_by", g));
                }
                if let Some(c) = &cursor {
                    q.push(("cursor", c.as_str()));
                }
                let resp = api.handle(operator_request("GET", &path, &q, None), now()).await;
                assert_eq!(resp.status(), 200, "{:?}", body_json(&resp));
                let out = body_json(&resp);
                rows.extend(out["data"].as_array().unwrap().iter().cloned());
                pages += 1;
                match out["next_cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => return (rows, pages),
                }
            }
        }
    };
    let (all, pages) = fetch_all("1000", None).await;
    assert_eq!(pages, 1);
    let total: Decimal = all
        .iter()
        .map(|r| Decimal::from_str(r["quantity"].as_str().unwrap()).unwrap())
        .sum();
    let expected: Decimal = events.iter().map(|e| e.quantity).sum();
    assert_eq!(total, expected, "exact decimals as strings");
    let (paged, pages) = fetch_all("7", None).await;
    assert!(pages > 10);
    assert_eq!(paged, all, "same rows, same order, each once");
    let keys: HashSet<String> = paged
        .iter()
        .map(|r| format!("{}|{}|{}", r["window_start"], r["meter"], r["dimensions"]))
        .collect();
    assert_eq!(keys.len(), paged.len());

    let (by_region, _) = fetch_all("1000", Some("region")).await;
    let (by_region_paged, _) = fetch_all("3", Some("region")).await;
    assert_eq!(by_region_paged, by_region);
    let count: u64 = by_region.iter().map(|r| r["event_count"].as_u64().unwrap()).sum();
    assert_eq!(count, 1500);
}

on_both_backends!(bad_requests_get_problems_naming_the_field,);
