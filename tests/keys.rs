//! API keys through the API function's handler against the local endpoint: creation shows the
//! secret once and stores only a salted hash, listing shows prefixes, rotation and revocation
//! take effect on the next request.

use chrono::{DateTime, Duration, DurationRound, Utc};
use meterline_integration_tests::{
    api_request, body_json, on_both_backends, operator_request, with_key, Backend, Stack, OPERATOR_KEY,
};
use serde_json::{json, Value};

fn now() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::seconds(1)).unwrap()
}

async fn create(api: &api::Api, body: Value) -> Value {
    let resp = api
        .handle(
            operator_request("POST", "/v1/api-keys", &[], Some(&body.to_string())),
            now(),
        )
        .await;
    assert_eq!(resp.status(), 201, "{}", body_json(&resp));
    body_json(&resp)
}

#[tokio::test]
async fn a_key_is_shown_once_used_rotated_and_revoked() {
    let stack = Stack::create("keys").await;
    let api = stack.api();
    stack.create_tenants(&["acct_a"], &[]).await;
    let usage = |key: &str, account: &str| {
        with_key(
            api_request("GET", &format!("/v1/accounts/{account}/usage"), &[], None),
            key,
        )
    };

    let created = create(
        &api,
        json!({"role": "customer", "account_id": "acct_a", "name": "dashboard"}),
    )
    .await;
    let key = created["key"].as_str().unwrap().to_string();
    let id = created["id"].as_str().unwrap().to_string();
    assert!(key.starts_with(&format!("ml_{id}_")), "{created}");
    assert_eq!(created["prefix"], format!("ml_{id}_"));
    assert_eq!(created["role"], "customer");
    assert_eq!(created["status"], "active");

    // The secret is stored nowhere: only the salted hash.
    let secret = &key[key.rfind('_').unwrap() + 1..];
    let items = stack
        .ddb()
        .scan()
        .table_name(stack.resource("ApiKeysTable"))
        .send()
        .await
        .unwrap();
    assert_eq!(items.items().len(), 1);
    assert!(!format!("{:?}", items.items()).contains(secret));

    // Listed and read by prefix only.
    for req in [
        operator_request("GET", "/v1/api-keys", &[], None),
        operator_request("GET", &format!("/v1/api-keys/{id}"), &[], None),
    ] {
        let resp = api.handle(req, now()).await;
        assert_eq!(resp.status(), 200);
        let text = body_json(&resp).to_string();
        assert!(text.contains(&id) && !text.contains(secret), "{text}");
    }

    // The customer key reads its own account, and only that.
    assert_eq!(api.handle(usage(&key, "acct_a"), now()).await.status(), 200);
    assert_eq!(api.handle(usage(&key, "acct_b"), now()).await.status(), 404);
    let resp = api
        .handle(
            with_key(api_request("GET", "/v1/api-keys", &[], None), &key),
            now(),
        )
        .await;
    assert_eq!(resp.status(), 403);

    // Rotation: a new secret for the same role and account; the old key fails at once.
    let resp = api
        .handle(
            operator_request("POST", &format!("/v1/api-keys/{id}/rotate"), &[], None),
            now(),
        )
        .await;
    assert_eq!(resp.status(), 201, "{}", body_json(&resp));
    let rotated = body_json(&resp);
    let new_key = rotated["key"].as_str().unwrap().to_string();
    let new_id = rotated["id"].as_str().unwrap().to_string();
    assert_eq!(
        (rotated["replaces"].as_str(), rotated["account_id"].as_str()),
        (Some(id.as_str()), Some("acct_a"))
    );
    assert_eq!(api.handle(usage(&key, "acct_a"), now()).await.status(), 401);
    assert_eq!(api.handle(usage(&new_key, "acct_a"), now()).await.status(), 200);
    let old = body_json(
        &api.handle(
            operator_request("GET", &format!("/v1/api-keys/{id}"), &[], None),
            now(),
        )
        .await,
    );
    assert_eq!(
        (old["status"].as_str(), old["replaced_by"].as_str()),
        (Some("revoked"), Some(new_id.as_str()))
    );
    let resp = api
        .handle(
            operator_request("POST", &format!("/v1/api-keys/{id}/rotate"), &[], None),
            now(),
        )
        .await;
    assert_eq!(resp.status(), 409, "a revoked key cannot be rotated");

    // Revocation fails the key on the very next request.
    let resp = api
        .handle(
            operator_request("DELETE", &format!("/v1/api-keys/{new_id}"), &[], None),
            now(),
        )
        .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(body_json(&resp)["status"], "revoked");
    let resp = api.handle(usage(&new_key, "acct_a"), now()).await;
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers()["www-authenticate"], "Bearer realm=\"meterline\"");
    assert_eq!(body_json(&resp)["errors"][0]["field"], "Authorization");

    for (method, path) in [
        ("DELETE", "/v1/api-keys/aaaaaaaaaaaaaaaa"),
        ("GET", "/v1/api-keys/aaaaaaaaaaaaaaaa"),
        ("POST", "/v1/api-keys/aaaaaaaaaaaaaaaa/rotate"),
        ("GET", "/v1/api-keys/not-a-key-id"),
    ] {
        let resp = api.handle(operator_request(method, path, &[], None), now()).await;
        assert_eq!(resp.status(), 404, "{method} {path}");
    }
}

/// Several rotations of one key at once (as several API instances would serve them; in the
/// fault mode their transactions cancel each other): one replaces the key, every other is a 409
/// "revoked" (it found the key rotated), none is left half-done, and the old key names the one
/// that won. A rotation that met another's transaction in flight must send its own again once that
/// one committed, not answer an error.
#[tokio::test]
async fn concurrent_rotations_of_one_key_replace_it_once() {
    let stack = Stack::create("keys-race").await;
    let api = stack.api();
    stack.create_tenants(&["acct_a"], &[]).await;
    let id = create(&api, json!({"role": "customer", "account_id": "acct_a"})).await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let rotations = (0..meterline_integration_tests::parallel().max(4)).map(|_| {
        api.handle(
            operator_request("POST", &format!("/v1/api-keys/{id}/rotate"), &[], None),
            now(),
        )
    });
    let answers: Vec<(u16, Value)> = futures::future::join_all(rotations)
        .await
        .iter()
        .map(|r| (r.status().as_u16(), body_json(r)))
        .collect();
    let won: Vec<&Value> = answers
        .iter()
        .filter(|(s, _)| *s == 201)
        .map(|(_, b)| b)
        .collect();
    assert_eq!(won.len(), 1, "{answers:?}");
    for (status, body) in &answers {
        assert!(
            *status == 201 || (*status == 409 && body["type"].as_str().unwrap().ends_with("/key-revoked")),
            "{answers:?}"
        );
    }
    let listed = body_json(
        &api.handle(operator_request("GET", "/v1/api-keys", &[], None), now())
            .await,
    );
    let keys = listed["data"].as_array().unwrap();
    assert_eq!(keys.len(), 2, "the old key and one new key: {listed}");
    let old = keys.iter().find(|k| k["id"] == id.as_str()).unwrap();
    assert_eq!(old["replaced_by"], won[0]["id"], "{listed}");
}

async fn new_keys_are_validated_and_listed_in_pages(backend: Backend) {
    let stack = Stack::on(backend, "keylist").await;
    let api = stack.api();
    stack
        .create_tenants(&[], &["prov_0", "prov_1", "prov_2", "prov_3", "prov_4"])
        .await;
    let cases = [
        (json!({}), "role"),
        (json!({"role": "customer"}), "account_id"),
        (
            json!({"role": "provider", "provider_id": "bad id"}),
            "provider_id",
        ),
        (json!({"role": "operator", "account_id": "acct_a"}), "account_id"),
        (json!({"role": "operator", "expires": "never"}), "expires"),
        (json!({"role": "operator", "name": "x".repeat(129)}), "name"),
        (json!([]), "body"),
    ];
    for (body, field) in cases {
        let resp = api
            .handle(
                operator_request("POST", "/v1/api-keys", &[], Some(&body.to_string())),
                now(),
            )
            .await;
        assert_eq!(resp.status(), 400, "{body}");
        assert_eq!(resp.headers()["content-type"], "application/problem+json");
        assert_eq!(body_json(&resp)["errors"][0]["field"], field, "{body}");
    }
    // A body that is not UTF-8 (API Gateway passes it base64-encoded) is refused, naming it.
    for path in ["/v1/api-keys", "/v1/usage"] {
        let mut req = operator_request("POST", path, &[], None);
        *req.body_mut() = lambda_http::Body::Binary(vec![0xff, 0xfe, 0xfd]);
        let resp = api.handle(req, now()).await;
        assert_eq!(resp.status(), 400, "{path}");
        assert_eq!(body_json(&resp)["errors"][0]["field"], "body");
    }
    let mut ids = Vec::new();
    for i in 0..5 {
        let k = create(
            &api,
            json!({"role": "provider", "provider_id": format!("prov_{i}")}),
        )
        .await;
        ids.push(k["id"].as_str().unwrap().to_string());
    }
    ids.sort();
    let mut listed = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut q = vec![("limit", "2")];
        if let Some(c) = &cursor {
            q.push(("cursor", c));
        }
        let resp = api
            .handle(operator_request("GET", "/v1/api-keys", &q, None), now())
            .await;
        assert_eq!(resp.status(), 200);
        let page = body_json(&resp);
        assert!(page["data"].as_array().unwrap().len() <= 2);
        listed.extend(
            page["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k["id"].as_str().unwrap().to_string()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(listed, ids, "every key once, in id order");
    for q in [("limit", "0"), ("limit", "201"), ("cursor", "!!")] {
        let resp = api
            .handle(operator_request("GET", "/v1/api-keys", &[q], None), now())
            .await;
        assert_eq!(resp.status(), 400);
        assert_eq!(body_json(&resp)["errors"][0]["field"], q.0);
    }
    // The bootstrap key is not stored, so it is not listed and cannot be revoked through the API.
    let boot = &OPERATOR_KEY[3..19];
    assert!(!listed.iter().any(|id| id == boot));
    let resp = api
        .handle(
            operator_request("DELETE", &format!("/v1/api-keys/{boot}"), &[], None),
            now(),
        )
        .await;
    assert_eq!(resp.status(), 404);
}

on_both_backends!(new_keys_are_validated_and_listed_in_pages,);
