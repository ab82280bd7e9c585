//! The call recorder against the local endpoint: each call a function's clients make is one JSON
//! line naming the function, the service, the operation and the resources IAM checks, whether
//! the call succeeds or not (scripts/iam_check.py reads these lines).

use meterline_integration_tests::Stack;
use meterline_shared::adapters::aws::aws_sdk_dynamodb::types::{
    AttributeValue, Put, PutRequest, TransactWriteItem, Update, WriteRequest,
};
use meterline_shared::adapters::aws::aws_sdk_eventbridge::types::PutEventsRequestEntry;
use meterline_shared::adapters::aws::aws_sdk_sqs::types::SendMessageBatchRequestEntry;
use meterline_shared::adapters::aws::AwsClients;
use serde_json::{json, Value};
use std::collections::HashMap;

fn s(v: &str) -> AttributeValue {
    AttributeValue::S(v.into())
}

fn key(pk: &str, sk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_string(), s(pk)), ("sk".to_string(), s(sk))])
}

#[tokio::test]
async fn each_call_is_one_line_with_its_function_and_the_resources_iam_checks() {
    let stack = Stack::create("calls").await;
    let path = std::env::temp_dir().join(format!("meterline-calls-{}.jsonl", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let clients = AwsClients::recording(&stack.sdk, "SomeFunction", &path).unwrap();
    let (events, aggregates) = (
        stack.resource("UsageEventsTable"),
        stack.resource("UsageAggregatesTable"),
    );
    let (rejected, queue) = (
        stack.resource("RejectedEventsTable"),
        stack.resource("CloseQueue"),
    );
    let ddb = &clients.dynamodb;

    ddb.describe_table().table_name(&events).send().await.unwrap();
    ddb.query()
        .table_name(&aggregates)
        .index_name("changes")
        .key_condition_expression("pk = :p")
        .expression_attribute_values(":p", s("acct#hour"))
        .send()
        .await
        .unwrap();
    let put = Put::builder()
        .table_name(&events)
        .set_item(Some(key("acct", "e1")))
        .build()
        .unwrap();
    let update = Update::builder()
        .table_name(&aggregates)
        .set_key(Some(key("acct#hour", "w")))
        .update_expression("ADD quantity :q")
        .expression_attribute_values(":q", AttributeValue::N("1".into()))
        .build()
        .unwrap();
    ddb.transact_write_items()
        .transact_items(TransactWriteItem::builder().put(put).build())
        .transact_items(TransactWriteItem::builder().update(update).build())
        .send()
        .await
        .unwrap();
    let request = PutRequest::builder()
        .set_item(Some(key("acct", "f1")))
        .build()
        .unwrap();
    ddb.batch_write_item()
        .request_items(
            &rejected,
            vec![WriteRequest::builder().put_request(request).build()],
        )
        .send()
        .await
        .unwrap();
    // A call that fails is recorded all the same: it was made with the role.
    let missing = format!("{events}-missing");
    ddb.get_item()
        .table_name(&missing)
        .set_key(Some(key("a", "b")))
        .send()
        .await
        .unwrap_err();
    let entry = SendMessageBatchRequestEntry::builder()
        .id("m1")
        .message_body("{}")
        .build()
        .unwrap();
    clients
        .sqs
        .send_message_batch()
        .queue_url(&queue)
        .entries(entry)
        .send()
        .await
        .unwrap();
    let event = |bus: Option<&str>| {
        PutEventsRequestEntry::builder()
            .source("meterline.billing")
            .detail_type("Test")
            .detail("{}")
            .set_event_bus_name(bus.map(String::from))
            .build()
    };
    clients
        .eventbridge
        .put_events()
        .entries(event(None))
        .entries(event(Some("default")))
        .send()
        .await
        .unwrap();

    let text = std::fs::read_to_string(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let call = |service: &str, operation: &str, resources: Value| json!({"function": "SomeFunction", "service": service, "operation": operation, "resources": resources});
    assert_eq!(
        lines,
        [
            call("DynamoDB", "DescribeTable", json!([{"table": events}])),
            call(
                "DynamoDB",
                "Query",
                json!([{"table": aggregates, "index": "changes"}])
            ),
            call(
                "DynamoDB",
                "TransactWriteItems",
                json!([{"table": events, "item": "Put"}, {"table": aggregates, "item": "Update"}])
            ),
            call("DynamoDB", "BatchWriteItem", json!([{"table": rejected}])),
            call("DynamoDB", "GetItem", json!([{"table": missing}])),
            call("SQS", "SendMessageBatch", json!([{"queue": queue}])),
            call("EventBridge", "PutEvents", json!([{"bus": "default"}])),
        ]
    );
}
