//! The paging and retry loops against a scripted endpoint ([`Endpoint`]): the local endpoint
//! never leaves a batch item unprocessed nor splits a small query into pages, so the answers
//! that exercise those paths are written here.

use super::super::scripted::Endpoint;
use super::*;
use aws_sdk_dynamodb::types::PutRequest;
use serde_json::{json, Value};

const TABLE: &str = "t";

fn put(sk: &str) -> WriteRequest {
    let put = PutRequest::builder()
        .item("pk", s("p"))
        .item("sk", s(sk))
        .build()
        .unwrap();
    WriteRequest::builder().put_request(put).build()
}

/// The sort keys of a `BatchWriteItem` request body.
fn written(body: &Value) -> Vec<String> {
    body["RequestItems"][TABLE]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["PutRequest"]["Item"]["sk"]["S"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test]
async fn batch_write_sends_unprocessed_items_again_and_nothing_twice() {
    // The first call leaves two of its 25 items unprocessed.
    let endpoint = Endpoint::new(|n, body| {
        let unprocessed = match n {
            0 => json!({ TABLE: [body["RequestItems"][TABLE][3], body["RequestItems"][TABLE][7]] }),
            _ => json!({}),
        };
        json!({ "UnprocessedItems": unprocessed })
    });
    let requests: Vec<_> = (0..30).map(|i| put(&format!("i{i:02}"))).collect();
    let calls = batch_write(&endpoint.client, TABLE, requests, "items", 3)
        .await
        .unwrap();

    let sent = endpoint.requests();
    let sizes: Vec<usize> = sent.iter().map(|b| written(b).len()).collect();
    assert_eq!(sizes, [25, 2, 5]);
    assert_eq!(calls, 3);
    assert_eq!(written(&sent[1]), ["i03", "i07"]);
    // What the endpoint accepted: every item exactly once.
    let mut accepted: Vec<String> = written(&sent[0])
        .into_iter()
        .filter(|sk| sk != "i03" && sk != "i07")
        .chain(written(&sent[1]))
        .chain(written(&sent[2]))
        .collect();
    accepted.sort();
    let expected: Vec<String> = (0..30).map(|i| format!("i{i:02}")).collect();
    assert_eq!(accepted, expected);
}

#[tokio::test]
async fn batch_write_gives_up_after_its_attempts() {
    let endpoint =
        Endpoint::new(|_, body| json!({ "UnprocessedItems": { TABLE: [body["RequestItems"][TABLE][0]] } }));
    let err = batch_write(&endpoint.client, TABLE, vec![put("a"), put("b")], "items", 3)
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unavailable(ref m) if m == "items left unprocessed"));
    assert_eq!(endpoint.requests().len(), 3);
}

#[tokio::test]
async fn batch_get_requests_unprocessed_keys_again() {
    let item = |sk: &str| json!({ "pk": { "S": "p" }, "sk": { "S": sk } });
    let endpoint = Endpoint::new(move |n, body| match n {
        0 => json!({
            "Responses": { TABLE: [item("a")] },
            "UnprocessedKeys": { TABLE: { "Keys": [
                body["RequestItems"][TABLE]["Keys"][1],
                body["RequestItems"][TABLE]["Keys"][2],
            ] } },
        }),
        _ => json!({ "Responses": { TABLE: [item("b"), item("c")] }, "UnprocessedKeys": {} }),
    });
    let mut keys = KeysAndAttributes::builder();
    for sk in ["a", "b", "c"] {
        keys = keys.keys(Item::from([
            ("pk".to_string(), s("p")),
            ("sk".to_string(), s(sk)),
        ]));
    }
    let found = batch_get(&endpoint.client, TABLE, keys.build().unwrap(), "keys", 3)
        .await
        .unwrap();

    let sks: Vec<&str> = found.iter().map(|i| get_s(i, "sk").unwrap()).collect();
    assert_eq!(sks, ["a", "b", "c"]);
    let sent = endpoint.requests();
    assert_eq!(sent.len(), 2);
    let again: Vec<&str> = sent[1]["RequestItems"][TABLE]["Keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["sk"]["S"].as_str().unwrap())
        .collect();
    assert_eq!(again, ["b", "c"]);
}

/// Answers a query in pages of two of `sks`, after the request's `ExclusiveStartKey`.
fn pages(sks: &'static [&'static str]) -> impl Fn(usize, &Value) -> Value + Send + Sync {
    move |_, body| {
        let start = body["ExclusiveStartKey"]["sk"]["S"].as_str();
        let from = start.map_or(0, |a| sks.iter().position(|s| *s == a).unwrap() + 1);
        let page = &sks[from..(from + 2).min(sks.len())];
        let items: Vec<Value> = page
            .iter()
            .map(|sk| json!({ "pk": { "S": "p" }, "sk": { "S": sk } }))
            .collect();
        let mut answer = json!({ "Items": items, "Count": page.len() });
        if from + 2 < sks.len() {
            answer["LastEvaluatedKey"] = json!({ "pk": { "S": "p" }, "sk": { "S": page[1] } });
        }
        answer
    }
}

fn query(client: &Client) -> QueryFluentBuilder {
    client
        .query()
        .table_name(TABLE)
        .key_condition_expression("pk = :pk")
        .expression_attribute_values(":pk", s("p"))
}

#[tokio::test]
async fn query_all_visits_every_page_once() {
    let endpoint = Endpoint::new(pages(&["a", "b", "c", "d", "e"]));
    let items = query_all(query(&endpoint.client)).await.unwrap();

    let sks: Vec<&str> = items.iter().map(|i| get_s(i, "sk").unwrap()).collect();
    assert_eq!(sks, ["a", "b", "c", "d", "e"]);
    let starts: Vec<Value> = endpoint
        .requests()
        .iter()
        .map(|b| b["ExclusiveStartKey"].clone())
        .collect();
    assert_eq!(
        starts,
        [
            Value::Null,
            json!({ "pk": { "S": "p" }, "sk": { "S": "b" } }),
            json!({ "pk": { "S": "p" }, "sk": { "S": "d" } }),
        ]
    );
}

#[tokio::test]
async fn query_each_stops_when_told() {
    let endpoint = Endpoint::new(pages(&["a", "b", "c", "d", "e"]));
    let mut seen = Vec::new();
    query_each(query(&endpoint.client), |page| {
        seen.extend(page);
        Ok(ControlFlow::Break(()))
    })
    .await
    .unwrap();
    assert_eq!(seen.len(), 2);
    assert_eq!(endpoint.requests().len(), 1);
}

#[tokio::test]
async fn query_page_cursor_is_the_key_of_the_last_item_read() {
    let endpoint = Endpoint::new(|_, _| {
        json!({
            "Items": [],
            "Count": 0,
            "LastEvaluatedKey": {
                "due_pk": { "S": "DUE#1" }, "due_at": { "S": "t2" },
                "pk": { "S": "p2" }, "sk": { "S": "s|2" },
            },
        })
    });
    let cursor = ["due_at", "pk", "sk"];
    let page = query_page(
        query(&endpoint.client),
        &[("due_pk", "DUE#1")],
        &cursor,
        Some("t1|p1|s|1"),
        |i| Ok(i.clone()),
    )
    .await
    .unwrap();

    assert_eq!(page.next.as_deref(), Some("t2|p2|s|2"));
    assert_eq!(
        endpoint.requests()[0]["ExclusiveStartKey"],
        json!({
            "due_pk": { "S": "DUE#1" }, "due_at": { "S": "t1" },
            "pk": { "S": "p1" }, "sk": { "S": "s|1" },
        })
    );
    // A cursor with too few parts is refused before any request.
    let err = query_page(query(&endpoint.client), &[], &cursor, Some("t1|p1"), |i| {
        Ok(i.clone())
    })
    .await
    .unwrap_err();
    assert!(matches!(err, StoreError::Corrupt(_)));
    assert_eq!(endpoint.requests().len(), 1);
}

#[test]
fn item_sizes_count_names_and_values_as_dynamodb_does() {
    use aws_sdk_dynamodb::types::AttributeValue as V;
    use std::collections::HashMap;
    let item: Item = HashMap::from([
        ("pk".to_string(), V::S("acct_0001".into())),      // 2 + 9
        ("quantity".to_string(), V::N("1234.500".into())), // 8 + ceil(5/2) + 1
        ("n".to_string(), V::N("-0.001".into())),          // 1 + 1 + 1 + 1
        ("ok".to_string(), V::Bool(true)),                 // 2 + 1
        (
            "dimensions".to_string(),
            V::M(HashMap::from([("region".to_string(), V::S("eu-west".into()))])),
        ), // 10 + 3 + 1 + 6 + 7
    ]);
    assert_eq!(item_size(&item), 11 + 12 + 4 + 3 + 27);
    assert_eq!(write_units(0), 1);
    assert_eq!(write_units(1024), 1);
    assert_eq!(write_units(1025), 2);
    let units = WriteUnits::default();
    units.add("t", 2);
    units.add("t/i", 1);
    units.add("t", 3);
    assert_eq!(units.snapshot(), BTreeMap::from([("t", 5), ("t/i", 1)]));
}
