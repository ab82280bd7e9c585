//! The live usage stream end to end on the local endpoint: usage posted to the API and ingested
//! by the ingestion handler arrives as server-sent events, read over HTTP by a real SSE client.
//!
//! The streaming handler is served over loopback HTTP/1.1 by a small server in this test: each
//! request becomes the function URL event (payload 2.0) Lambda would deliver, and the handler's
//! streamed body is written out chunk by chunk as it is produced, as the function URL does with
//! `InvokeMode: RESPONSE_STREAM`. The client is reqwest's byte stream parsed by
//! eventsource-stream; the raw bytes are kept to see the keep-alive comments (which an SSE
//! parser drops).

use chrono::{DateTime, Duration, DurationRound, Utc};
use eventsource_stream::{Event, Eventsource};
use futures::StreamExt;
use http_body_util::BodyExt;
use meterline_integration_tests::{operator_request, pump, with_header, Stack, OPERATOR_KEY};
use meterline_shared::adapters::aws::DynamoApiKeyStore;
use meterline_shared::adapters::config::StreamConfig;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use usage_stream::StreamFunction;

fn now() -> DateTime<Utc> {
    Utc::now().duration_trunc(Duration::milliseconds(1)).unwrap()
}

fn config(stack: &Stack, lifetime_ms: u64) -> StreamConfig {
    StreamConfig {
        api_keys_table: stack.api_config().api_keys_table,
        bootstrap_operator_key_secret: None,
        max_per_key: 3,
        lifetime: std::time::Duration::from_millis(lifetime_ms),
        poll: std::time::Duration::from_millis(150),
        keep_alive: std::time::Duration::from_millis(700),
        settle: std::time::Duration::from_millis(300),
        retry: std::time::Duration::from_millis(250),
        granularities: stack.usage_config().ingest.granularities,
    }
}

/// The stream function on this stack, with the template's environment for the rest.
fn function(stack: &Stack, lifetime_ms: u64) -> Arc<StreamFunction> {
    let env = stack.function_env("UsageStreamFunction");
    let from_template = StreamConfig::from_env(&meterline_shared::adapters::config::Env(move |k: &str| {
        env.get(k).cloned()
    }))
    .expect("the template's environment is valid");
    assert_eq!(from_template.lifetime, std::time::Duration::from_secs(300));
    let config = config(stack, lifetime_ms);
    Arc::new(StreamFunction {
        store: Arc::new(stack.usage_store_of("UsageStreamFunction")),
        keys: Arc::new(DynamoApiKeyStore::new(
            stack.clients("UsageStreamFunction").dynamodb,
            config.api_keys_table.clone(),
        )),
        bootstrap: Some(meterline_shared::services::authenticate::bootstrap_record(
            &OPERATOR_KEY.parse().unwrap(),
            Utc::now(),
        )),
        config,
    })
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                i += 3;
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}

/// The function URL event (payload 2.0) for one HTTP request.
fn function_url_event(method: &str, target: &str, headers: &[(String, String)]) -> lambda_http::Request {
    let (path, raw_query) = target.split_once('?').unwrap_or((target, ""));
    let query: serde_json::Map<String, Value> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), json!(percent_decode(v)))
        })
        .collect();
    let headers: serde_json::Map<String, Value> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), json!(v)))
        .collect();
    let event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": path,
        "rawQueryString": raw_query,
        "headers": headers,
        "queryStringParameters": query,
        "requestContext": {
            "accountId": "anonymous", "apiId": "stream", "domainName": "stream.lambda-url.us-east-1.on.aws",
            "domainPrefix": "stream", "requestId": "req-1", "routeKey": "$default", "stage": "$default",
            "time": "26/Nov/2026:12:00:00 +0000", "timeEpoch": 1795000000000u64,
            "http": {"method": method, "path": path, "protocol": "HTTP/1.1", "sourceIp": "127.0.0.1", "userAgent": "test"}
        },
        "isBase64Encoded": false
    });
    lambda_http::request::from_str(&event.to_string()).expect("a valid function URL event")
}

/// Serves `function` on a loopback port: one request per connection, the response body written
/// chunk by chunk (HTTP/1.1 chunked) as the handler produces it.
async fn serve(function: Arc<StreamFunction>) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((socket, _)) = listener.accept().await else {
                return;
            };
            let function = function.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                let request_line = lines.next_line().await.unwrap().unwrap_or_default();
                let mut parts = request_line.split(' ');
                let (method, target) = (
                    parts.next().unwrap_or("").to_string(),
                    parts.next().unwrap_or("/").to_string(),
                );
                let mut headers = Vec::new();
                while let Ok(Some(line)) = lines.next_line().await {
                    if line.is_empty() {
                        break;
                    }
                    if let Some((k, v)) = line.split_once(':') {
                        headers.push((k.trim().to_string(), v.trim().to_string()));
                    }
                }
                let resp = function
                    .handle(function_url_event(&method, &target, &headers))
                    .await;
                let (parts, mut body) = resp.into_parts();
                let mut head = format!("HTTP/1.1 {}\r\n", parts.status);
                for (k, v) in &parts.headers {
                    head.push_str(&format!("{k}: {}\r\n", v.to_str().unwrap()));
                }
                head.push_str("transfer-encoding: chunked\r\nconnection: close\r\n\r\n");
                if write.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                while let Some(Ok(frame)) = body.frame().await {
                    let Ok(data) = frame.into_data() else { continue };
                    let chunk = [format!("{:x}\r\n", data.len()).as_bytes(), &data, b"\r\n"].concat();
                    if write.write_all(&chunk).await.is_err() || write.flush().await.is_err() {
                        return; // the client went away: dropping the body stops the stream
                    }
                }
                let _ = write.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    addr
}

/// What a client read from one stream.
struct Read {
    status: u16,
    content_type: String,
    events: Vec<Event>,
    /// When each event arrived, from the request.
    arrived: Vec<std::time::Duration>,
    raw: String,
}

impl Read {
    fn aggregates(&self) -> Vec<&Event> {
        self.events.iter().filter(|e| e.event == "aggregate").collect()
    }

    fn data(e: &Event) -> Value {
        serde_json::from_str(&e.data).unwrap()
    }
}

/// Reads one stream to its end with a real SSE client.
async fn read_stream(
    addr: SocketAddr,
    account: &str,
    key: Option<&str>,
    last_event_id: Option<&str>,
    since: DateTime<Utc>,
) -> Read {
    read_stream_at(&format!("http://{addr}"), account, key, last_event_id, since).await
}

/// Reads one stream at `base` (a server's root URL) to its end with a real SSE client.
async fn read_stream_at(
    base: &str,
    account: &str,
    key: Option<&str>,
    last_event_id: Option<&str>,
    since: DateTime<Utc>,
) -> Read {
    let mut req = reqwest::Client::new()
        .get(format!("{base}/v1/accounts/{account}/usage/stream"))
        .query(&[("since", since.to_rfc3339())])
        .header("accept", "text/event-stream");
    if let Some(key) = key {
        req = req.bearer_auth(key);
    }
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    let started = std::time::Instant::now();
    let resp = tokio::time::timeout(std::time::Duration::from_secs(60), req.send())
        .await
        .expect("headers in time")
        .expect("the request is answered");
    let status = resp.status().as_u16();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let raw = Arc::new(std::sync::Mutex::new(String::new()));
    let seen = raw.clone();
    let stream = resp
        .bytes_stream()
        .inspect(move |chunk| {
            if let Ok(c) = chunk {
                seen.lock().unwrap().push_str(&String::from_utf8_lossy(c));
            }
        })
        .eventsource();
    let (events, arrived): (Vec<Event>, Vec<std::time::Duration>) = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        stream
            .map(|e| (e.expect("well-formed SSE"), started.elapsed()))
            .collect::<Vec<_>>(),
    )
    .await
    .expect("the stream ends by itself")
    .into_iter()
    .unzip();
    let raw = raw.lock().unwrap().clone();
    Read {
        status,
        content_type,
        events,
        arrived,
        raw,
    }
}

fn usage(id: &str, account: &str, gpu: &str, quantity: &str) -> Value {
    json!({"id": id, "account_id": account, "provider_id": "prov_s", "job_id": "job_1",
           "meter": "gpu_seconds", "quantity": quantity, "timestamp": now().to_rfc3339(),
           "dimensions": {"gpu_model": gpu}})
}

/// Posts usage to the API and runs the ingestion handler over the queue, as deployed.
async fn ingest(stack: &Stack, api: &api::Api, events: Value) {
    let resp = api
        .handle(
            operator_request("POST", "/v1/usage", &[], Some(&events.to_string())),
            now(),
        )
        .await;
    assert_eq!(resp.status(), 202);
    let ingestor = usage_ingest::Ingestor {
        store: std::sync::Arc::new(stack.usage_store_of("UsageIngestFunction")),
        settings: stack.usage_config().ingest,
    };
    let queue = stack.resource("UsageQueue");
    let stats = pump(&stack.sqs(), &queue, 10, |e| ingestor.handle(e, now())).await;
    assert_eq!(stats.failed, 0);
}

async fn customer_key(api: &api::Api, account: &str) -> String {
    let create = json!({"account_id": account, "currency": "USD"}).to_string();
    let resp = api
        .handle(
            operator_request("POST", "/v1/accounts", &[], Some(&create)),
            now(),
        )
        .await;
    assert!([201, 409].contains(&resp.status().as_u16()), "{resp:?}");
    let body = json!({"role": "customer", "account_id": account});
    let resp = api
        .handle(
            operator_request("POST", "/v1/api-keys", &[], Some(&body.to_string())),
            now(),
        )
        .await;
    assert_eq!(resp.status(), 201);
    meterline_integration_tests::body_json(&resp)["key"]
        .as_str()
        .unwrap()
        .to_string()
}

fn ids(events: &[&Event]) -> Vec<String> {
    events.iter().map(|e| e.id.clone()).collect()
}

#[tokio::test]
async fn ingested_usage_streams_as_events_that_resume_without_repeats() {
    let stack = Stack::create("stream").await;
    let api = stack.api();
    let since = now() - Duration::minutes(1);
    let key = customer_key(&api, "acct_s").await;
    ingest(
        &stack,
        &api,
        json!([
            usage("e1", "acct_s", "H100", "10"),
            usage("e2", "acct_s", "A100", "2"),
            usage("o1", "acct_other", "H100", "99")
        ]),
    )
    .await;

    // A stream open while more usage is ingested: the first batch, then the second's changes.
    let addr = serve(function(&stack, 4_000)).await;
    let reader = tokio::spawn({
        let key = key.clone();
        async move { read_stream(addr, "acct_s", Some(&key), None, since).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(1_500)).await;
    ingest(
        &stack,
        &api,
        json!([
            usage("e3", "acct_s", "H100", "5"),
            usage("e4", "acct_s", "L4", "1")
        ]),
    )
    .await;
    let first = reader.await.unwrap();
    assert_eq!(first.status, 200);
    assert!(
        first.content_type.starts_with("text/event-stream"),
        "{}",
        first.content_type
    );
    let aggregates = first.aggregates();
    let seen: Vec<(String, String)> = aggregates
        .iter()
        .map(|e| {
            let d = Read::data(e);
            assert_eq!(d["account_id"], "acct_s", "only the account's own aggregates");
            assert_eq!(d["granularity"], "hour");
            (
                d["dimensions"]["gpu_model"].as_str().unwrap().to_string(),
                d["quantity"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(seen.len(), 4, "{seen:?}");
    let (mut batch1, mut batch2) = (seen[..2].to_vec(), seen[2..].to_vec());
    batch1.sort();
    batch2.sort();
    assert_eq!(
        batch1,
        [("A100".into(), "2".into()), ("H100".into(), "10".into())]
    );
    assert_eq!(
        batch2,
        [("H100".into(), "15".into()), ("L4".into(), "1".into())],
        "a changed aggregate is sent again with its new totals"
    );
    let all_ids = ids(&aggregates);
    assert!(
        all_ids.windows(2).all(|w| w[0] < w[1]),
        "ids increase: {all_ids:?}"
    );
    assert!(
        first.raw.contains("\n: keep-alive\n\n"),
        "a keep-alive comment in: {}",
        first.raw
    );
    let end = first.events.last().unwrap();
    assert_eq!(end.event, "end", "the stream ends with an end event");
    assert_eq!(Read::data(end)["reason"], "lifetime");
    assert_eq!(end.retry, Some(std::time::Duration::from_millis(250)));
    assert!(end.id > *all_ids.last().unwrap());

    // Reconnecting with the id of an event mid-stream sends exactly the changes after it.
    let addr = serve(function(&stack, 1_000)).await;
    let resumed = read_stream(addr, "acct_s", Some(&key), Some(&all_ids[1]), since).await;
    assert_eq!(ids(&resumed.aggregates()), all_ids[2..], "no repeat, no gap");

    // Reconnecting with the end event's id sends only what changed since.
    ingest(&stack, &api, json!([usage("e5", "acct_s", "A100", "0.5")])).await;
    let after_end = read_stream(addr, "acct_s", Some(&key), Some(&end.id), since).await;
    let changes: Vec<Value> = after_end.aggregates().iter().map(|e| Read::data(e)).collect();
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(
        (
            changes[0]["dimensions"]["gpu_model"].as_str(),
            changes[0]["quantity"].as_str()
        ),
        (Some("A100"), Some("2.5"))
    );
    assert_eq!(changes[0]["event_count"], 2);
}

#[tokio::test]
async fn the_stream_refuses_other_tenants_missing_keys_and_bad_ids_before_streaming() {
    let stack = Stack::create("stream-refusals").await;
    let api = stack.api();
    let other = customer_key(&api, "acct_other").await;
    let addr = serve(function(&stack, 1_000)).await;
    let since = now();

    let read = read_stream(addr, "acct_s", Some(&other), None, since).await;
    assert_eq!(
        (read.status, read.content_type.as_str()),
        (404, "application/problem+json")
    );
    assert!(read.aggregates().is_empty());

    let read = read_stream(addr, "acct_s", None, None, since).await;
    assert_eq!(read.status, 401);
    let read = read_stream(addr, "acct_s", Some("ml_notakey"), None, since).await;
    assert_eq!(read.status, 401);

    let read = read_stream(addr, "acct_s", Some(OPERATOR_KEY), Some("not-an-id"), since).await;
    assert_eq!(read.status, 400);
    assert!(read.raw.contains("Last-Event-ID"), "{}", read.raw);

    // The operator may read any account.
    let read = read_stream(addr, "acct_s", Some(OPERATOR_KEY), None, since).await;
    assert_eq!(read.status, 200);
    assert_eq!(read.events.last().unwrap().event, "end");

    let resp = reqwest::Client::new()
        .post(format!("http://{addr}/v1/accounts/acct_s/usage/stream"))
        .bearer_auth(OPERATOR_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
}

/// Through API Gateway (buffered) the same path answers what has settled and ends at once.
#[tokio::test]
async fn the_api_route_answers_the_settled_changes_and_ends() {
    let stack = Stack::create("stream-api").await;
    let api = stack.api();
    let since = now() - Duration::minutes(1);
    ingest(&stack, &api, json!([usage("e1", "acct_b", "H100", "3")])).await;
    let path = "/v1/accounts/acct_b/usage/stream";
    let since_text = since.to_rfc3339();
    let query = [("since", since_text.as_str())];
    // Not settled yet: nothing but the end event.
    let resp = api
        .handle(operator_request("GET", path, &query, None), now())
        .await;
    assert_eq!(resp.status(), 200);
    let lambda_http::Body::Text(early) = resp.body() else {
        panic!("a text body")
    };
    assert!(!early.contains("event: aggregate"), "{early}");
    // Settled: the aggregate, then the end event with retry.
    let later = now() + Duration::seconds(6);
    let resp = api
        .handle(operator_request("GET", path, &query, None), later)
        .await;
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    let lambda_http::Body::Text(body) = resp.body() else {
        panic!("a text body")
    };
    assert_eq!(body.matches("event: aggregate").count(), 1, "{body}");
    assert!(body.contains("\"quantity\":\"3\""), "{body}");
    assert!(body.contains("retry: 1000\n"), "{body}");
    let end_id = body
        .split("\n\n")
        .find(|f| f.contains("event: end"))
        .and_then(|f| f.lines().find_map(|l| l.strip_prefix("id: ")))
        .unwrap()
        .to_string();
    // Resuming from the end event's id repeats nothing.
    let resumed = with_header(
        operator_request("GET", path, &query, None),
        "last-event-id",
        &end_id,
    );
    let resp = api.handle(resumed, later).await;
    let lambda_http::Body::Text(body) = resp.body() else {
        panic!("a text body")
    };
    assert!(!body.contains("event: aggregate"), "{body}");
}

/// End to end with the built functions under `cargo lambda watch`, run by
/// `scripts/stream_e2e.sh`: usage posted to the API function, the queue delivered to the
/// ingestion function as Lambda's SQS mapping would, and the stream read from the usage-stream
/// function's URL (the emulator streams responses) by a real SSE client. The script sets
/// `METERLINE_WATCH_URL`, `METERLINE_STACK_JSON` (the stack the functions use) and
/// `METERLINE_API_KEY` (their bootstrap operator key), and a 5-second stream lifetime.
#[tokio::test]
#[ignore = "run by scripts/stream_e2e.sh, which starts the functions under cargo lambda watch"]
async fn under_cargo_lambda_watch() {
    // Every step has its own bound too; this one makes sure a stuck emulator fails the run
    // with a message instead of holding CI until its own time limit.
    tokio::time::timeout(std::time::Duration::from_secs(600), end_to_end_under_watch())
        .await
        .expect("the end-to-end run finished within 10 minutes");
}

async fn end_to_end_under_watch() {
    let watch = std::env::var("METERLINE_WATCH_URL").expect("METERLINE_WATCH_URL");
    let operator = std::env::var("METERLINE_API_KEY").expect("METERLINE_API_KEY");
    let stack_json =
        std::fs::read_to_string(std::env::var("METERLINE_STACK_JSON").expect("METERLINE_STACK_JSON"))
            .expect("the stack description");
    let stack = Stack {
        backend: meterline_integration_tests::Backend::Moto,
        description: serde_json::from_str(&stack_json).unwrap(),
        sdk: meterline_shared::adapters::aws::sdk_config().await,
        memory: None,
    };
    let api_url = format!("{watch}/lambda-url/api");
    let stream_url = format!("{watch}/lambda-url/usage-stream");
    let http = reqwest::Client::builder()
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .unwrap();
    let post = |path: &str, body: Value| {
        http.post(format!("{api_url}{path}"))
            .bearer_auth(&operator)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
    };
    for account in ["acct_e2e", "acct_e2e_other"] {
        let resp = post("/v1/accounts", json!({"account_id": account, "currency": "USD"}))
            .await
            .unwrap();
        assert!([201, 409].contains(&resp.status().as_u16()), "{resp:?}");
    }
    let resp = post(
        "/v1/api-keys",
        json!({"role": "customer", "account_id": "acct_e2e"}),
    )
    .await
    .unwrap();
    assert_eq!(resp.status(), 201);
    let key = resp.json::<Value>().await.unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();
    let other = post(
        "/v1/api-keys",
        json!({"role": "customer", "account_id": "acct_e2e_other"}),
    )
    .await
    .unwrap()
    .json::<Value>()
    .await
    .unwrap()["key"]
        .as_str()
        .unwrap()
        .to_string();

    // Usage through the API function, then the ingestion function over the queue.
    let ingest = |events: Value| {
        let (http, stack, post) = (&http, &stack, &post);
        let invoke = format!("{watch}/2015-03-31/functions/usage-ingest/invocations");
        async move {
            assert_eq!(post("/v1/usage", events).await.unwrap().status(), 202);
            let queue = stack.resource("UsageQueue");
            let stats = pump(&stack.sqs(), &queue, 10, |event| {
                let request = http.post(&invoke).json(&event);
                async move {
                    let resp = request.send().await.expect("the ingestion function answers");
                    assert_eq!(resp.status(), 200);
                    resp.json::<aws_lambda_events::sqs::SqsBatchResponse>()
                        .await
                        .unwrap()
                }
            })
            .await;
            assert!(stats.invocations > 0 && stats.failed == 0, "{stats:?}");
        }
    };
    let since = now() - Duration::minutes(1);
    ingest(json!([
        usage("w1", "acct_e2e", "H100", "4"),
        usage("w2", "acct_e2e_other", "H100", "9")
    ]))
    .await;

    let reader = tokio::spawn({
        let (stream_url, key) = (stream_url.clone(), key.clone());
        async move { read_stream_at(&stream_url, "acct_e2e", Some(&key), None, since).await }
    });
    tokio::time::sleep(std::time::Duration::from_millis(2_000)).await;
    ingest(json!([
        usage("w3", "acct_e2e", "H100", "1"),
        usage("w4", "acct_e2e", "A100", "2")
    ]))
    .await;
    let read = reader.await.unwrap();
    assert_eq!(read.status, 200, "{}", read.raw);
    assert!(read.content_type.starts_with("text/event-stream"));
    let aggregates = read.aggregates();
    let quantities: Vec<(String, String)> = aggregates
        .iter()
        .map(|e| {
            let d = Read::data(e);
            assert_eq!(d["account_id"], "acct_e2e");
            (
                d["dimensions"]["gpu_model"].as_str().unwrap().into(),
                d["quantity"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert_eq!(
        quantities[0],
        ("H100".to_string(), "4".to_string()),
        "{quantities:?}"
    );
    let mut rest = quantities[1..].to_vec();
    rest.sort();
    assert_eq!(rest, [("A100".into(), "2".into()), ("H100".into(), "5".into())]);
    assert!(read.raw.contains("\n: keep-alive\n\n"), "{}", read.raw);
    let end = read.events.last().unwrap();
    assert_eq!(
        (end.event.as_str(), end.retry),
        ("end", Some(std::time::Duration::from_millis(1000)))
    );
    // Streamed, not buffered: the first event arrived well before the stream ended.
    let first = read.events.iter().position(|e| e.event == "aggregate").unwrap();
    let (first_at, end_at) = (read.arrived[first], *read.arrived.last().unwrap());
    assert!(
        end_at - first_at >= std::time::Duration::from_secs(2),
        "{first_at:?} {end_at:?}"
    );

    // Resuming mid-stream repeats nothing and misses nothing.
    let all_ids = ids(&aggregates);
    let resumed = read_stream_at(&stream_url, "acct_e2e", Some(&key), Some(&all_ids[0]), since).await;
    assert_eq!(ids(&resumed.aggregates()), all_ids[1..]);

    let refused = read_stream_at(&stream_url, "acct_e2e", Some(&other), None, since).await;
    assert_eq!(refused.status, 404);
    let refused = read_stream_at(&stream_url, "acct_e2e", None, None, since).await;
    assert_eq!(refused.status, 401);
}

/// The DynamoDB adapter reads the changes index in pages: strictly after `after`, strictly
/// before `before`, in change-key order, so paging from the last key read misses and repeats
/// nothing.
#[tokio::test]
async fn the_changes_index_pages_strictly_between_its_bounds() {
    use meterline_shared::domain::usage::{AggregateRef, DimensionSet, EventRef, Granularity};
    use meterline_shared::ports::usage::{change_time_prefix, UsageStore};
    let stack = Stack::create("stream-index").await;
    let store = stack.usage_store();
    let start = Utc::now() - Duration::seconds(1);
    let window = Granularity::Hour.window_start(Utc::now());
    let dims: Vec<DimensionSet> = (0..7)
        .map(|i| DimensionSet::new([("gpu_model".to_string(), format!("g{i}"))].into()))
        .collect();
    for (i, d) in dims.iter().enumerate() {
        let a = AggregateRef {
            account_id: "acct_i",
            provider_id: "prov_i",
            granularity: Granularity::Hour,
            window_start: window,
            meter: meterline_shared::domain::meter::Meter::GpuSeconds,
            dimensions: d,
            quantity: rust_decimal::Decimal::from(i as i64 + 1),
            event_count: 1,
        };
        let events: [EventRef<'_>; 0] = [];
        store.commit(&events, &[a], Utc::now()).await.unwrap();
    }
    let before = change_time_prefix(Utc::now() + Duration::seconds(1));
    let mut after = change_time_prefix(start);
    let mut keys = Vec::new();
    loop {
        let page = store
            .aggregates_changed("acct_i", Granularity::Hour, &after, &before, 3)
            .await
            .unwrap();
        assert!(page.len() <= 3);
        let Some(last) = page.last() else { break };
        after = last.change_key.clone();
        keys.extend(page.iter().map(|c| c.change_key.clone()));
    }
    assert_eq!(keys.len(), 7, "{keys:?}");
    assert!(keys.windows(2).all(|w| w[0] < w[1]));
    // `after` itself is excluded, and so is everything from `before` on.
    let rest = store
        .aggregates_changed("acct_i", Granularity::Hour, &keys[2], &before, 100)
        .await
        .unwrap();
    assert_eq!(
        rest.iter().map(|c| c.change_key.clone()).collect::<Vec<_>>(),
        keys[3..]
    );
    let none = store
        .aggregates_changed(
            "acct_i",
            Granularity::Hour,
            &change_time_prefix(start),
            &change_time_prefix(start),
            100,
        )
        .await
        .unwrap();
    assert!(none.is_empty());
    // Another account's and another granularity's aggregates are not in this partition.
    assert!(store
        .aggregates_changed(
            "acct_j",
            Granularity::Hour,
            &change_time_prefix(start),
            &before,
            100
        )
        .await
        .unwrap()
        .is_empty());
    assert!(store
        .aggregates_changed(
            "acct_i",
            Granularity::Day,
            &change_time_prefix(start),
            &before,
            100
        )
        .await
        .unwrap()
        .is_empty());
    assert_eq!(rest[0].aggregate.account_id, "acct_i");
}

#[tokio::test]
async fn minute_windows_are_400_on_the_function_where_they_are_not_kept() {
    let stack = Stack::create("stream-minute").await;
    assert!(!stack
        .usage_config()
        .ingest
        .granularities
        .contains(&meterline_shared::domain::usage::Granularity::Minute));
    let f = function(&stack, 1000);
    let auth = [("authorization".to_string(), format!("Bearer {OPERATOR_KEY}"))];
    let req = function_url_event(
        "GET",
        "/v1/accounts/acct_a/usage/stream?granularity=minute",
        &auth,
    );
    let resp = f.handle(req).await;
    assert_eq!(resp.status(), 400);
    let req = function_url_event("GET", "/v1/accounts/acct_a/usage/stream?granularity=hour", &auth);
    assert_eq!(f.handle(req).await.status(), 200);
}

#[tokio::test]
async fn one_key_holds_at_most_its_share_of_streams() {
    let stack = Stack::create("stream-per-key").await;
    let f = function(&stack, 60_000);
    let max = f.config.max_per_key as usize;
    let auth = [("authorization".to_string(), format!("Bearer {OPERATOR_KEY}"))];
    let path = "/v1/accounts/acct_a/usage/stream";
    let mut held = Vec::new();
    for _ in 0..max {
        let resp = f.handle(function_url_event("GET", path, &auth)).await;
        assert_eq!(resp.status(), 200);
        held.push(resp);
    }
    let resp = f.handle(function_url_event("GET", path, &auth)).await;
    assert_eq!(resp.status(), 429, "one stream more than the key's share");
    assert_eq!(resp.headers()["retry-after"], "5");
    // A client that goes away frees its slot as soon as the stream notices.
    held.pop();
    let mut reopened = None;
    for _ in 0..50 {
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        let resp = f.handle(function_url_event("GET", path, &auth)).await;
        if resp.status() == 200 {
            reopened = Some(resp);
            break;
        }
    }
    assert!(reopened.is_some(), "the slot was released");
}
