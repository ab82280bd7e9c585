//! The tenant-isolation matrix, generated from the route table: every route that needs a key is
//! called with no key, a malformed key, an unknown key, a revoked key, a tenant key of a role
//! that may not call it, and another tenant's ids. Every such call is refused (401, 403, or 404
//! for another tenant's objects) before any handler logic runs. A control call by an allowed
//! caller shows each route's handler is reachable.

use chrono::{DateTime, Duration, DurationRound, Utc};
use meterline_integration_tests::{
    api_request, body_json, on_both_backends, operator_request, with_header, with_key, Backend, Stack,
};
use meterline_shared::adapters::http::routes::Access;
use serde_json::json;

fn now() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::seconds(1)).unwrap()
}

type Api = api::Api;

async fn new_key(api: &Api, body: serde_json::Value) -> (String, String) {
    let resp = api
        .handle(
            operator_request("POST", "/v1/api-keys", &[], Some(&body.to_string())),
            now(),
        )
        .await;
    assert_eq!(resp.status(), 201);
    let b = body_json(&resp);
    (
        b["id"].as_str().unwrap().into(),
        b["key"].as_str().unwrap().into(),
    )
}

/// The route's path with each parameter filled: tenants' ids from `tenant`, keys with `key_id`.
fn path_for(pattern: &str, account: &str, provider: &str, key_id: &str) -> String {
    pattern
        .replace("{account_id}", account)
        .replace("{provider_id}", provider)
        .replace("{key_id}", key_id)
        .replace("{subscription_id}", "sub_x")
        .replace("{book_id}", "book_x")
        .replace("{version}", "1")
        .replace("{plan_id}", "plan_x")
        .replace("{hold_id}", "hold_x")
        .replace("{top_up_id}", "topup_x")
}

async fn every_route_refuses_every_other_caller_before_its_handler(backend: Backend) {
    let stack = Stack::on(backend, "isolation").await;
    let api = stack.api();
    stack.create_tenants(&["acct_a", "acct_b"], &["prov_a"]).await;
    let (_, customer_a) = new_key(&api, json!({"role": "customer", "account_id": "acct_a"})).await;
    let (_, provider_a) = new_key(&api, json!({"role": "provider", "provider_id": "prov_a"})).await;
    let (victim_id, _) = new_key(&api, json!({"role": "customer", "account_id": "acct_b"})).await;
    let (revoked_id, revoked) = new_key(&api, json!({"role": "operator"})).await;
    let resp = api
        .handle(
            operator_request("DELETE", &format!("/v1/api-keys/{revoked_id}"), &[], None),
            now(),
        )
        .await;
    assert_eq!(resp.status(), 200);
    let unknown = "ml_aaaaaaaaaaaaaaaa_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let wrong_secret = format!(
        "{}{}",
        &customer_a[..customer_a.len() - 1],
        if customer_a.ends_with('a') { "b" } else { "a" }
    );

    let mut checked = 0;
    for route in Api::ROUTES {
        if route.access == Access::Public {
            continue;
        }
        // Another tenant's ids: acct_b, prov_b, and acct_b's key.
        let path = path_for(route.path, "acct_b", "prov_b", &victim_id);
        let body = matches!(route.method, "POST" | "PUT").then_some("{}");
        let mut callers: Vec<(&str, Option<String>, &[u16])> = vec![
            ("no key", None, &[401]),
            ("malformed key", Some("ml_nope".into()), &[401]),
            ("unknown key", Some(unknown.into()), &[401]),
            ("wrong secret", Some(wrong_secret.clone()), &[401]),
            ("revoked key", Some(revoked.clone()), &[401]),
        ];
        let (customer_status, provider_status): (&[u16], &[u16]) = match route.access {
            Access::Operator => (&[403], &[403]),
            Access::Account => (&[404], &[403]),
            Access::Provider => (&[403], &[404]),
            Access::Authenticated | Access::Public => continue,
        };
        callers.push(("customer of acct_a", Some(customer_a.clone()), customer_status));
        callers.push(("provider prov_a", Some(provider_a.clone()), provider_status));
        for (who, key, expected) in callers {
            for scheme in ["Bearer", "bearer"] {
                let mut req = api_request(route.method, &path, &[], body);
                if let Some(k) = &key {
                    req = with_header(req, "authorization", &format!("{scheme} {k}"));
                }
                if route.method == "POST" {
                    req = with_header(req, "idempotency-key", &format!("iso-{checked}"));
                }
                let before = api.handler_calls();
                let resp = api.handle(req, now()).await;
                let status = resp.status().as_u16();
                assert!(
                    expected.contains(&status),
                    "{} {path} as {who}: {status} {}",
                    route.method,
                    body_json(&resp)
                );
                assert_eq!(resp.headers()["content-type"], "application/problem+json");
                assert_eq!(
                    api.handler_calls(),
                    before,
                    "{} {path} as {who} reached the handler",
                    route.method
                );
                checked += 1;
            }
        }
        // Control: the owner (or the operator) gets past the checks into the handler.
        let owner = match route.access {
            Access::Account => customer_a.clone(),
            Access::Provider => provider_a.clone(),
            _ => meterline_integration_tests::OPERATOR_KEY.to_string(),
        };
        let own_path = path_for(route.path, "acct_a", "prov_a", &victim_id);
        let before = api.handler_calls();
        let resp = api
            .handle(
                with_key(api_request(route.method, &own_path, &[], body), &owner),
                now(),
            )
            .await;
        assert!(
            ![401, 403].contains(&resp.status().as_u16()),
            "{} {own_path}",
            route.method
        );
        assert_eq!(
            api.handler_calls(),
            before + 1,
            "{} {own_path} did not reach its handler",
            route.method
        );
    }
    assert!(checked >= 100, "{checked} calls checked");

    // Other tenants' objects are indistinguishable from missing ones.
    let theirs = api
        .handle(
            with_key(
                api_request("GET", "/v1/accounts/acct_b/usage", &[], None),
                &customer_a,
            ),
            now(),
        )
        .await;
    let missing = api
        .handle(
            with_key(
                api_request("GET", "/v1/accounts/no_such_acct/usage", &[], None),
                &customer_a,
            ),
            now(),
        )
        .await;
    assert_eq!(body_json(&theirs), body_json(&missing));
}

on_both_backends!(every_route_refuses_every_other_caller_before_its_handler,);
