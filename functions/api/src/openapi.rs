//! The OpenAPI 3.1 document, served at `/openapi.json`.
//!
//! Built from the route table ([`Api::ROUTES`]), so it cannot disagree with what the API does:
//! each route's path parameters (typed by name, [`crate::request::path`]), query parameters and
//! request body come from the request types its row declares, the same types its handler parses
//! ([`crate::request`]); its security (none for public routes, the bearer key otherwise), who
//! may call it, the `Idempotency-Key` header on POSTs, and the problem responses the middleware
//! can give (401, 403, 404, 413, 422, 409, 503) come from the row too. The operations' own
//! responses are described in [`crate::responses`]. Unit tests check that every route is
//! documented, every documented operation is a route, and each route's parameters and body are
//! its request types'.

use crate::routes::Route;
use crate::Api;
use meterline_shared::adapters::http::routes::Access;
use meterline_shared::adapters::http::stream;
use meterline_shared::domain::usage::Granularity;
use serde_json::{json, Value};
use utoipa::OpenApi;

/// OpenAPI links from a response to the operations on what it created or listed: what
/// schemathesis's stateful phase follows (`scripts/contract.sh`) and what a client reads to
/// find its next call. Each row: the source operation (path, method, status), the link's name,
/// the target `operationId`, and each target parameter with its runtime expression.
#[allow(clippy::type_complexity)]
#[rustfmt::skip]
const LINKS: &[(&str, &str, &str, &str, &str, &[(&str, &str)])] = &[
    ("/v1/accounts", "post", "201", "GetAccount", "get_account", NEW_ACCOUNT),
    ("/v1/accounts", "post", "201", "UpdateAccount", "update_account", NEW_ACCOUNT),
    ("/v1/accounts", "post", "201", "ListAccountBudgets", "list_budgets", NEW_ACCOUNT),
    ("/v1/accounts", "post", "201", "CreateAccountBudget", "create_budget", NEW_ACCOUNT),
    ("/v1/accounts", "post", "201", "GetAccountEstimate", "get_estimate", NEW_ACCOUNT),
    ("/v1/accounts", "post", "201", "GetAccountForecast", "get_forecast", NEW_ACCOUNT),
    ("/v1/accounts", "post", "201", "ListAccountSubscriptions", "list_subscriptions", NEW_ACCOUNT),
    ("/v1/accounts", "post", "201", "CreateAccountSubscription", "create_subscription", NEW_ACCOUNT),
    ("/v1/accounts", "post", "201", "ListAccountInvoices", "list_invoices", NEW_ACCOUNT),
    ("/v1/accounts", "post", "201", "ListAccountCreditNotes", "list_credit_notes", NEW_ACCOUNT),
    ("/v1/accounts", "post", "201", "GetAccountUsage", "get_usage", NEW_ACCOUNT),
    ("/v1/accounts", "post", "201", "ListAccountRejected", "get_account_rejected", NEW_ACCOUNT),
    ("/v1/accounts", "post", "201", "ReplayAccountRejected", "replay_account_rejected", NEW_ACCOUNT),
    ("/v1/accounts/{account_id}/subscriptions", "post", "201", "GetSubscription", "get_subscription", NEW_SUBSCRIPTION),
    ("/v1/accounts/{account_id}/subscriptions", "post", "201", "CancelSubscription", "cancel_subscription", NEW_SUBSCRIPTION),
    ("/v1/accounts/{account_id}/subscriptions", "post", "201", "PreviewPlanChange", "preview_change", NEW_SUBSCRIPTION),
    ("/v1/accounts/{account_id}/subscriptions", "post", "201", "ChangePlan", "apply_change", NEW_SUBSCRIPTION),
    ("/v1/providers", "post", "201", "GetProvider", "get_provider", NEW_PROVIDER),
    ("/v1/providers", "post", "201", "UpdateProvider", "update_provider", NEW_PROVIDER),
    ("/v1/providers", "post", "201", "ListProviderBooks", "list_provider_books", NEW_PROVIDER),
    ("/v1/providers", "post", "201", "ListProviderStatements", "list_statements", NEW_PROVIDER),
    ("/v1/price-books", "post", "201", "ListBookVersions", "list_book_versions", &[("book_id", "$response.body#/id")]),
    ("/v1/price-books", "post", "201", "GetBookVersion", "get_book_version",
        &[("book_id", "$response.body#/id"), ("version", "$response.body#/version")]),
    ("/v1/plans", "post", "201", "GetPlan", "get_plan", &[("plan_id", "$response.body#/plan_id")]),
    ("/v1/plans", "post", "201", "ListPlanVersions", "list_plan_versions", &[("plan_id", "$response.body#/plan_id")]),
    ("/v1/accounts/{account_id}/invoices", "get", "200", "GetInvoice", "get_invoice", FIRST_INVOICE),
    ("/v1/accounts/{account_id}/invoices", "get", "200", "VoidInvoice", "void_invoice", FIRST_INVOICE),
    ("/v1/accounts/{account_id}/invoices", "get", "200", "MarkInvoicePaid", "mark_paid", FIRST_INVOICE),
    ("/v1/accounts/{account_id}/invoices", "get", "200", "ListInvoiceCreditNotes", "list_invoice_credit_notes", FIRST_INVOICE),
    ("/v1/accounts/{account_id}/invoices", "get", "200", "CreateCreditNote", "create_credit_note", FIRST_INVOICE),
    ("/v1/accounts/{account_id}/invoices/{invoice_id}/credit-notes", "post", "201", "GetCreditNote", "get_credit_note",
        &[("account_id", "$request.path.account_id"), ("credit_note_id", "$response.body#/credit_note_id")]),
    ("/v1/accounts/{account_id}/credit-notes", "get", "200", "GetFirstCreditNote", "get_credit_note",
        &[("account_id", "$request.path.account_id"), ("credit_note_id", "$response.body#/data/0/credit_note_id")]),
    ("/v1/providers/{provider_id}/statements", "get", "200", "GetStatement", "get_statement",
        &[("provider_id", "$request.path.provider_id"), ("statement_id", "$response.body#/data/0/statement_id")]),
    ("/v1/api-keys", "post", "201", "GetKey", "get_key", &[("key_id", "$response.body#/id")]),
    ("/v1/api-keys", "post", "201", "RotateKey", "rotate_key", &[("key_id", "$response.body#/id")]),
    ("/v1/api-keys", "post", "201", "RevokeKey", "revoke_key", &[("key_id", "$response.body#/id")]),
    ("/v1/api-keys/{key_id}/rotate", "post", "201", "GetNewKey", "get_key", &[("key_id", "$response.body#/id")]),
    ("/v1/api-keys/{key_id}/rotate", "post", "201", "RevokeNewKey", "revoke_key", &[("key_id", "$response.body#/id")]),
    ("/v1/api-keys/{key_id}/rotate", "post", "201", "GetRotatedKey", "get_key", &[("key_id", "$request.path.key_id")]),
    ("/v1/accounts/{account_id}/authorizations", "post", "201", "GetAuthorization", "get_authorization", NEW_HOLD),
    ("/v1/accounts/{account_id}/authorizations", "post", "201", "CaptureAuthorization", "capture_authorization", NEW_HOLD),
    ("/v1/accounts/{account_id}/authorizations", "post", "201", "ReleaseAuthorization", "release_authorization", NEW_HOLD),
    ("/v1/accounts/{account_id}/credit-grants", "post", "201", "ListGrants", "list_grants", SAME_ACCOUNT),
    ("/v1/accounts/{account_id}/credit-grants", "post", "201", "GetBalances", "get_balances", SAME_ACCOUNT),
    ("/v1/accounts/{account_id}/credit-grants", "post", "201", "GetLedger", "get_ledger", SAME_ACCOUNT),
    ("/v1/accounts/{account_id}/top-ups", "post", "201", "GetTopUp", "get_top_up",
        &[("account_id", "$request.path.account_id"), ("top_up_id", "$response.body#/top_up_id")]),
    ("/v1/accounts/{account_id}/budgets", "post", "201", "GetBudget", "get_budget", NEW_BUDGET),
    ("/v1/accounts/{account_id}/budgets", "post", "201", "ReplaceBudget", "replace_budget", NEW_BUDGET),
    ("/v1/accounts/{account_id}/budgets", "post", "201", "DeleteBudget", "delete_budget", NEW_BUDGET),
    ("/v1/accounts/{account_id}/budgets", "post", "201", "ListBudgets", "list_budgets",
        &[("account_id", "$request.path.account_id")]),
];

const NEW_ACCOUNT: &[(&str, &str)] = &[("account_id", "$response.body#/account_id")];
const NEW_SUBSCRIPTION: &[(&str, &str)] = &[
    ("account_id", "$request.path.account_id"),
    ("subscription_id", "$response.body#/subscription_id"),
];
const NEW_PROVIDER: &[(&str, &str)] = &[("provider_id", "$response.body#/provider_id")];
const FIRST_INVOICE: &[(&str, &str)] = &[
    ("account_id", "$request.path.account_id"),
    ("invoice_id", "$response.body#/data/0/invoice_id"),
];
const NEW_HOLD: &[(&str, &str)] = &[
    ("account_id", "$request.path.account_id"),
    ("hold_id", "$response.body#/hold_id"),
];
const SAME_ACCOUNT: &[(&str, &str)] = &[("account_id", "$request.path.account_id")];
const NEW_BUDGET: &[(&str, &str)] = &[
    ("account_id", "$request.path.account_id"),
    ("budget_id", "$response.body#/budget_id"),
];

fn problem_response(description: &str) -> Value {
    json!({
        "description": description,
        "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    })
}

/// The `{name}` parameters of a path pattern.
pub fn path_params(pattern: &str) -> Vec<&str> {
    pattern
        .split('/')
        .filter_map(|s| s.strip_prefix('{').and_then(|s| s.strip_suffix('}')))
        .collect()
}

/// A route's parameters: its path's, its query type's, and the headers it reads.
fn parameters<A>(route: &Route<A>) -> Vec<Value> {
    let mut out: Vec<Value> = path_params(route.path)
        .into_iter()
        .map(|name| {
            json!({
                "name": name,
                "in": "path",
                "required": true,
                "schema": crate::request::path::schema(name),
            })
        })
        .collect();
    out.extend(
        (route.shape.query)()
            .1
            .iter()
            .filter_map(|p| serde_json::to_value(p).ok()),
    );
    if route.path == stream::PATH {
        out.push(json!({
            "name": "Last-Event-ID",
            "in": "header",
            "required": false,
            "description": "The `id` of the last event received: resume right after it",
            "schema": {"type": "string", "maxLength": stream::MAX_ID_LEN, "pattern": LAST_EVENT_ID_PATTERN}
        }));
    }
    if route.method == "POST" {
        out.push(json!({
            "name": "Idempotency-Key",
            "in": "header",
            "required": false,
            // Printable ASCII, checked by the API (400). Not a `pattern` here: schemathesis
            // would send non-ASCII header bytes, which cargo lambda's local emulator answers
            // with its own 500 before the function runs (API Gateway passes them through;
            // tests/idempotency.rs covers the 400).
            "description": "Makes a retry return the first response instead of doing the work again \
                (24 hours). 1 to 255 printable ASCII characters without spaces.",
            "schema": {"type": "string", "minLength": 1, "maxLength": 255}
        }));
    }
    out
}

/// Fills one operation from its route: parameters, body, security, the middleware's problems
/// and its links.
fn complete<A>(op: &mut Value, route: &Route<A>, schemas: &mut serde_json::Map<String, Value>) {
    op["parameters"] = Value::Array(parameters(route));
    if let Some(body) = route.shape.body {
        let (_, name, components) = body();
        for (n, schema) in components {
            schemas.insert(n, serde_json::to_value(schema).unwrap_or_default());
        }
        let required = name != "NoBody";
        op["requestBody"] = json!({
            "required": required,
            "content": {"application/json": {"schema": {"$ref": format!("#/components/schemas/{name}")}}}
        });
    }
    let responses = &mut op["responses"];
    let mut add = |status: &str, description: &str| {
        if responses.get(status).is_none() {
            responses[status] = problem_response(description);
            if status == "503" {
                responses[status]["headers"] = json!({"Retry-After": {
                    "description": "Seconds to wait before sending the same request again",
                    "schema": {"type": "integer", "minimum": 0}
                }});
            }
        }
    };
    add(
        "503",
        "Storage is unavailable, or a write kept meeting concurrent ones; retry after `Retry-After` seconds",
    );
    add("400", "A parameter, header or field is invalid");
    if route.access != Access::Public {
        add(
            "401",
            "No key, or a key that is malformed, unknown, wrong or revoked",
        );
        add("404", "No such object (also another tenant's)");
    }
    if !matches!(route.access, Access::Public | Access::Authenticated) {
        add("403", "This key's role may not call this route");
    }
    // Any route's body is refused over `MAX_BODY_BYTES` (a PUT's too); a PUT replaces, so it
    // needs no Idempotency-Key.
    if route.shape.body.is_some() || route.method == "POST" {
        add("413", "The body is too large");
    }
    if route.method == "POST" {
        add("409", "A request with this Idempotency-Key is still running");
        add("422", "This Idempotency-Key was used for a different request");
    }
    op["security"] = if route.access == Access::Public {
        json!([])
    } else {
        json!([{"apiKey": []}])
    };
    let method = route.method.to_ascii_lowercase();
    for (path, m, status, name, target, params) in LINKS {
        if *path == route.path && *m == method {
            let params: serde_json::Map<String, Value> =
                params.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
            op["responses"][*status]["links"][*name] = json!({"operationId": target, "parameters": params});
        }
    }
    op["x-meterline-access"] = json!(route.access.describe());
    let text = op["description"].as_str().unwrap_or_default().to_string();
    op["description"] = json!(format!("{text}\n\nWho may call it: {}.", route.access.describe())
        .trim_start()
        .to_string());
}

/// A `Last-Event-ID` the stream sends ([`stream::Position::parse`]): a change key
/// (milliseconds, `#`, the aggregate's key) or a bare time prefix.
const LAST_EVENT_ID_PATTERN: &str = "^[0-9]{13}(#[!-~]*)?$";

/// The document a deployment serves: [`document`], with the usage stream's `granularity`
/// narrowed to the windows this deployment keeps (`AGGREGATE_GRANULARITIES`), the only ones its
/// stream accepts.
pub fn served(kept: &[Granularity]) -> Value {
    let mut doc = document();
    let names: Vec<String> = Granularity::ALL
        .iter()
        .filter(|g| kept.contains(g))
        .map(|g| g.to_string())
        .collect();
    if let Some(params) = doc["paths"][stream::PATH]["get"]["parameters"].as_array_mut() {
        for p in params.iter_mut().filter(|p| p["name"] == "granularity") {
            p["schema"]["enum"] = json!(names);
        }
    }
    doc
}

/// The document: the operations' responses, completed from the route table.
pub fn document() -> Value {
    let mut api = crate::responses::ApiDoc::openapi();
    api.merge(crate::responses::catalog::CatalogDoc::openapi());
    api.merge(crate::responses::invoices::InvoicesDoc::openapi());
    api.merge(crate::responses::credits::CreditsDoc::openapi());
    api.merge(crate::responses::top_ups::TopUpsDoc::openapi());
    let mut doc = serde_json::to_value(api).unwrap_or_default();
    doc["components"]["securitySchemes"] = json!({
        "apiKey": {
            "type": "http",
            "scheme": "bearer",
            "description": "An API key, `ml_<prefix>_<secret>`, as `Authorization: Bearer <key>`"
        }
    });
    // A text/event-stream body is described per event (as SSE clients and schemathesis read it).
    doc["components"]["schemas"]["UsageStreamEvent"] = json!({
        "type": "object",
        "description": "One server-sent event of the usage stream. `aggregate`: `data` is an aggregate's \
            current totals (JSON) and `id` its change key; `end`: the last event, `id` the position to \
            resume from, `retry` when to reconnect (ms).",
        "properties": {
            "event": {"type": "string", "enum": ["aggregate", "end"]},
            "id": {"type": "string"},
            "data": {"type": "string"},
            "retry": {"type": "integer", "minimum": 0}
        },
        "required": ["event", "data", "id"]
    });
    doc["paths"][stream::PATH]["get"]["responses"]["200"]["content"][stream::CONTENT_TYPE]["schema"] =
        json!({"$ref": "#/components/schemas/UsageStreamEvent"});
    let mut schemas = doc["components"]["schemas"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for route in Api::ROUTES {
        let method = route.method.to_ascii_lowercase();
        let op = &mut doc["paths"][route.path][method.as_str()];
        if op.is_object() {
            complete(op, route, &mut schemas);
        }
    }
    doc["components"]["schemas"] = Value::Object(schemas);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented_and_every_operation_is_a_route() {
        let doc = document();
        assert_eq!(doc["openapi"], "3.1.0");
        let mut documented = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                documented.push(format!("{} {path}", method.to_uppercase()));
            }
        }
        let mut routes: Vec<String> = Api::ROUTES
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect();
        documented.sort();
        routes.sort();
        assert_eq!(documented, routes);
        let post = &doc["paths"]["/v1/api-keys"]["post"];
        assert_eq!(post["security"], json!([{"apiKey": []}]));
        assert!(post["responses"]["401"].is_object() && post["responses"]["403"].is_object());
        assert_eq!(doc["paths"]["/health"]["get"]["security"], json!([]));
        let stream = &doc["paths"][stream::PATH]["get"];
        assert_eq!(
            stream["responses"]["200"]["content"]["text/event-stream"]["schema"]["$ref"],
            "#/components/schemas/UsageStreamEvent"
        );
        assert!(stream["responses"]["401"].is_object() && stream["responses"]["404"].is_object());
    }

    #[test]
    fn every_link_leads_to_an_operation_and_fills_its_path_parameters() {
        let doc = document();
        let mut operations = std::collections::HashMap::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for op in item.as_object().unwrap().values() {
                operations.insert(
                    op["operationId"].as_str().unwrap().to_string(),
                    (path.clone(), op),
                );
            }
        }
        let mut links = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for op in item.as_object().unwrap().values() {
                for response in op["responses"].as_object().unwrap().values() {
                    for (name, link) in response["links"].as_object().into_iter().flatten() {
                        links += 1;
                        let target = link["operationId"].as_str().unwrap();
                        let (target_path, _) = operations
                            .get(target)
                            .unwrap_or_else(|| panic!("{path}: link {name} to unknown {target}"));
                        let params = link["parameters"].as_object().unwrap();
                        for segment in target_path.split('/').filter(|s| s.starts_with('{')) {
                            let param = segment.trim_matches(['{', '}']);
                            assert!(
                                params.contains_key(param),
                                "{path}: link {name} leaves {param} unset"
                            );
                        }
                        for expr in params.values() {
                            let expr = expr.as_str().unwrap();
                            if let Some(p) = expr.strip_prefix("$request.path.") {
                                assert!(path.contains(&format!("{{{p}}}")), "{path}: {name} reads {expr}");
                            }
                        }
                    }
                }
            }
        }
        assert_eq!(links, LINKS.len());
    }

    type A = Api;

    /// Writes the document to `$METERLINE_OPENAPI_OUT` when set (to look at it, or feed it to a
    /// generator without a running API).
    #[test]
    fn the_document_is_json_with_every_route() {
        let doc = document();
        let text = serde_json::to_string_pretty(&doc).unwrap();
        assert_eq!(doc["paths"].as_object().unwrap().len(), 56);
        // Every reference resolves: a request type's field types are registered with it.
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for reference in text.split("\"#/components/schemas/").skip(1) {
            let name = reference.split('"').next().unwrap();
            assert!(
                schemas.contains_key(name),
                "{name} is referred to but not in the document"
            );
        }
        if let Ok(path) = std::env::var("METERLINE_OPENAPI_OUT") {
            std::fs::write(path, text).unwrap();
        }
    }

    /// A valid value of each path parameter, for requests to every route.
    fn example(name: &str) -> &'static str {
        match name {
            "key_id" => "abcdefghijklmnop",
            "credit_note_id" => "credit-note%23inv_1%23k1",
            "statement_id" => "20261125T130000.000Z:inv_1",
            "version" => "1",
            "base" => "BTC",
            "quote" => "USD",
            _ => "acct_1",
        }
    }

    #[test]
    fn each_route_documents_the_parameters_and_body_of_its_request_types() {
        let doc = document();
        for route in A::ROUTES {
            let op = &doc["paths"][route.path][route.method.to_ascii_lowercase()];
            let what = format!("{} {}", route.method, route.path);
            let documented: Vec<(String, String)> = op["parameters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|p| {
                    (
                        p["in"].as_str().unwrap().to_string(),
                        p["name"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            let mut declared: Vec<(String, String)> = path_params(route.path)
                .into_iter()
                .map(|n| ("path".to_string(), n.to_string()))
                .collect();
            declared.extend(
                (route.shape.query)()
                    .1
                    .iter()
                    .map(|p| ("query".to_string(), p.name.clone())),
            );
            let documented_non_header: Vec<_> = documented
                .iter()
                .filter(|(i, _)| i != "header")
                .cloned()
                .collect();
            assert_eq!(documented_non_header, declared, "{what}");
            for name in path_params(route.path) {
                assert!(
                    crate::request::path::schema(name).is_some(),
                    "{what}: no type for {{{name}}}"
                );
            }
            match route.shape.body {
                None => assert!(
                    op["requestBody"].is_null(),
                    "{what} documents a body it does not read"
                ),
                Some(body) => {
                    let (_, name, _) = body();
                    let reference = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                        .as_str()
                        .unwrap_or_default()
                        .to_string();
                    assert_eq!(reference, format!("#/components/schemas/{name}"), "{what}");
                    assert!(
                        doc["components"]["schemas"][&name].is_object(),
                        "{what}: {name} not in the document"
                    );
                }
            }
        }
    }

    /// Every route's handler reads the request types its row declares: an unknown query
    /// parameter, and on a route with a body an unknown body field, is refused naming it. Reading
    /// any other type than the declared one would be a 500 (`Ctx::query`, `Ctx::body`).
    #[tokio::test]
    async fn each_handler_reads_the_request_types_its_route_declares() {
        use meterline_shared::adapters::memory::{
            MemoryApiKeyStore, MemoryIdempotencyStore, MemoryUsageQueue, MemoryUsageStore,
        };
        use std::sync::Arc;
        let key = "ml_abcdefghijklmnop_abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuv";
        let api = A::new(
            Arc::new(MemoryUsageStore::new()),
            Arc::new(MemoryUsageQueue::new()),
            Default::default(),
            Arc::new(MemoryApiKeyStore::new()),
            Arc::new(MemoryIdempotencyStore::new()),
        )
        .with_bootstrap_key(&key.parse().unwrap());
        for route in A::ROUTES {
            let mut path = route.path.to_string();
            for name in path_params(route.path) {
                path = path.replace(&format!("{{{name}}}"), example(name));
            }
            let what = format!("{} {}", route.method, route.path);
            let request = |query: &str, body: Option<&str>| {
                let event = json!({
                    "version": "2.0", "routeKey": "ANY /{proxy+}", "rawPath": path, "rawQueryString": query,
                    "headers": {"content-type": "application/json", "authorization": format!("Bearer {key}")},
                    "queryStringParameters": if query.is_empty() { json!({}) } else { json!({"zz_probe": "1"}) },
                    "requestContext": {"accountId": "1", "apiId": "api", "domainName": "d", "domainPrefix": "d",
                        "requestId": "r", "routeKey": "ANY /{proxy+}", "stage": "$default", "time": "t", "timeEpoch": 0,
                        "http": {"method": route.method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "t"}},
                    "body": body, "isBase64Encoded": false
                });
                lambda_http::request::from_str(&event.to_string()).unwrap()
            };
            let names = |resp: lambda_http::Response<lambda_http::Body>| -> (u16, Vec<String>) {
                let status = resp.status().as_u16();
                let body: Value = match resp.body() {
                    lambda_http::Body::Text(t) => serde_json::from_str(t).unwrap_or_default(),
                    _ => Value::Null,
                };
                let fields = body["errors"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|e| e["field"].as_str().unwrap_or_default().to_string())
                            .collect()
                    })
                    .unwrap_or_default();
                (status, fields)
            };
            let body = route.shape.body.map(|_| "{}");
            let (status, fields) = names(api.handle(request("zz_probe=1", body), chrono::Utc::now()).await);
            assert_eq!(status, 400, "{what}: an unknown query parameter");
            assert!(fields.contains(&"zz_probe".to_string()), "{what}: {fields:?}");
            if route.shape.body.is_some() && route.path != "/v1/usage" {
                let (status, fields) = names(
                    api.handle(request("", Some(r#"{"zz_probe": 1}"#)), chrono::Utc::now())
                        .await,
                );
                assert_eq!(status, 400, "{what}: an unknown body field");
                assert!(fields.contains(&"zz_probe".to_string()), "{what}: {fields:?}");
            }
        }
    }

    /// The served document describes the stream's parameters as this deployment accepts them:
    /// `granularity` only the windows it keeps, `Last-Event-ID` only ids the stream sends.
    #[tokio::test]
    async fn the_served_document_describes_the_stream_as_this_deployment_accepts_it() {
        use meterline_shared::adapters::memory::{
            MemoryApiKeyStore, MemoryIdempotencyStore, MemoryUsageQueue, MemoryUsageStore,
        };
        use meterline_shared::domain::usage::Granularity;
        use meterline_shared::ports::usage::{change_key, change_time_prefix};
        use std::sync::Arc;
        let served = |kept: Vec<Granularity>| async move {
            let api = A::new(
                Arc::new(MemoryUsageStore::new()),
                Arc::new(MemoryUsageQueue::new()),
                Default::default(),
                Arc::new(MemoryApiKeyStore::new()),
                Arc::new(MemoryIdempotencyStore::new()),
            )
            .with_granularities(kept);
            let req = lambda_http::http::Request::builder()
                .uri("/openapi.json")
                .body(lambda_http::Body::Empty)
                .unwrap();
            let resp = api.handle(req, chrono::Utc::now()).await;
            assert_eq!(resp.status(), 200);
            let lambda_http::Body::Text(text) = resp.body() else {
                panic!("a text body")
            };
            let doc: Value = serde_json::from_str(text).unwrap();
            doc["paths"][stream::PATH]["get"]["parameters"].clone()
        };
        let param = |params: &Value, name: &str| {
            params
                .as_array()
                .unwrap()
                .iter()
                .find(|p| p["name"] == name)
                .unwrap()["schema"]
                .clone()
        };
        let params = served(vec![Granularity::Hour, Granularity::Day]).await;
        assert_eq!(param(&params, "granularity")["enum"], json!(["hour", "day"]));
        let params = served(vec![Granularity::Minute, Granularity::Hour, Granularity::Day]).await;
        assert_eq!(
            param(&params, "granularity")["enum"],
            json!(["minute", "hour", "day"])
        );
        let pattern = param(&params, "Last-Event-ID")["pattern"]
            .as_str()
            .unwrap()
            .to_string();
        let id = regex::Regex::new(&pattern).unwrap();
        let t = chrono::Utc::now();
        for sent in [
            change_key(t, "AGG#acct_1#hour#gpu_seconds#20261124T000000Z#-"),
            change_time_prefix(t),
        ] {
            assert!(stream::Position::parse(&sent).is_ok());
            assert!(id.is_match(&sent), "{sent}");
        }
        for refused in [
            "0".repeat(40),
            "1".repeat(12),
            format!("{}x", change_time_prefix(t)),
        ] {
            assert!(stream::Position::parse(&refused).is_err());
            assert!(!id.is_match(&refused), "{refused}");
        }
    }
}
