//! The SDK clients of one function, and the record of every AWS call they make.
//!
//! Each function builds its clients with [`AwsClients::for_function`], naming itself by its
//! logical id in `infra/template.yaml` (`ApiFunction`, `CloseWorkerFunction`, ...). When the
//! environment variable [`CALL_LOG_ENV`] names a file (the test suite sets it; a deployment
//! never does), every client carries a [`CallRecorder`] that appends one JSON line per call to
//! that file:
//!
//! ```json
//! {"function":"ApiFunction","service":"DynamoDB","operation":"Query",
//!  "resources":[{"table":"t-1-0-UsageAggregatesTable","index":"changes"}]}
//! ```
//!
//! The resources are read from the request as the SDK serialized it (the JSON body of the
//! DynamoDB, SQS, EventBridge, SSM and Secrets Manager protocols), so what is recorded is what
//! IAM would authorize: a transaction's items one by one, a batch's tables, an index by name.
//! `scripts/iam_check.py` compares the records with the roles the template grants
//! (docs/security.md, "Least privilege (IAM)").

use aws_sdk_dynamodb::config::interceptors::BeforeTransmitInterceptorContextRef;
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_smithy_runtime_api::client::orchestrator::Metadata;
use serde_json::{json, Map, Value};
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// The variable naming the file calls are appended to; unset or empty, nothing is recorded.
pub const CALL_LOG_ENV: &str = "METERLINE_AWS_CALL_LOG";

/// The call log could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("METERLINE_AWS_CALL_LOG: cannot open {}: {source}", path.display())]
pub struct CallLogError {
    path: PathBuf,
    source: std::io::Error,
}

/// The DynamoDB, SQS and EventBridge clients of one function.
#[derive(Clone, Debug)]
pub struct AwsClients {
    pub dynamodb: aws_sdk_dynamodb::Client,
    pub sqs: aws_sdk_sqs::Client,
    pub eventbridge: aws_sdk_eventbridge::Client,
    /// The recorder of these clients, when calls are recorded: for a client of another service
    /// (Secrets Manager) to carry it too.
    pub recorder: Option<CallRecorder>,
}

impl AwsClients {
    /// The clients of `function` (its logical id in the template), recording their calls to
    /// the file named by [`CALL_LOG_ENV`] when it is set.
    pub fn for_function(sdk: &aws_config::SdkConfig, function: &str) -> Result<AwsClients, CallLogError> {
        match std::env::var_os(CALL_LOG_ENV).filter(|p| !p.is_empty()) {
            Some(path) => AwsClients::recording(sdk, function, Path::new(&path)),
            None => Ok(AwsClients::build(sdk, None)),
        }
    }

    /// The clients of `function`, recording every call to `path` (appended to).
    pub fn recording(
        sdk: &aws_config::SdkConfig,
        function: &str,
        path: &Path,
    ) -> Result<AwsClients, CallLogError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| CallLogError {
                path: path.to_path_buf(),
                source,
            })?;
        let recorder = CallRecorder {
            function: function.to_string(),
            file: Arc::new(Mutex::new(file)),
        };
        Ok(AwsClients::build(sdk, Some(recorder)))
    }

    fn build(sdk: &aws_config::SdkConfig, recorder: Option<CallRecorder>) -> AwsClients {
        let mut dynamodb = aws_sdk_dynamodb::config::Builder::from(sdk);
        let mut sqs = aws_sdk_sqs::config::Builder::from(sdk);
        let mut eventbridge = aws_sdk_eventbridge::config::Builder::from(sdk);
        if let Some(r) = &recorder {
            dynamodb = dynamodb.interceptor(r.clone());
            sqs = sqs.interceptor(r.clone());
            eventbridge = eventbridge.interceptor(r.clone());
        }
        AwsClients {
            dynamodb: aws_sdk_dynamodb::Client::from_conf(dynamodb.build()),
            sqs: aws_sdk_sqs::Client::from_conf(sqs.build()),
            eventbridge: aws_sdk_eventbridge::Client::from_conf(eventbridge.build()),
            recorder,
        }
    }
}

/// An SDK interceptor that appends each call of one function to the call log.
#[derive(Clone, Debug)]
pub struct CallRecorder {
    function: String,
    file: Arc<Mutex<File>>,
}

impl CallRecorder {
    /// One line of the call log.
    fn record(&self, service: &str, operation: &str, body: Option<&[u8]>) -> Vec<u8> {
        let body: Value = body
            .and_then(|b| serde_json::from_slice(b).ok())
            .unwrap_or(Value::Null);
        let line = json!({
            "function": self.function,
            "service": service,
            "operation": operation,
            "resources": resources(service, &body),
        });
        let mut out = line.to_string().into_bytes();
        out.push(b'\n');
        out
    }
}

impl Intercept for CallRecorder {
    fn name(&self) -> &'static str {
        "CallRecorder"
    }

    /// Once per call (retries are not calls of their own), with the request as serialized.
    fn read_after_serialization(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let Some(meta) = cfg.load::<Metadata>() else {
            return Err("the SDK did not name the operation being called".into());
        };
        let line = self.record(meta.service(), meta.name(), context.request().body().bytes());
        // A poisoned lock only means another call panicked mid-write: the file is still usable.
        let mut file = self.file.lock().unwrap_or_else(|p| p.into_inner());
        file.write_all(&line)?;
        Ok(())
    }
}

/// The resources a request names, by service: tables (with the index, or the kind of
/// transaction item), queues, buses, parameters and secrets.
pub fn resources(service: &str, body: &Value) -> Vec<Value> {
    let text = |key: &str| body.get(key).and_then(Value::as_str);
    let mut out = Vec::new();
    match service {
        "DynamoDB" => dynamodb_resources(body, &mut out),
        "SQS" => out.extend(text("QueueUrl").map(|q| json!({ "queue": q }))),
        "EventBridge" => {
            let entries = body.get("Entries").and_then(Value::as_array);
            for entry in entries.into_iter().flatten() {
                // An entry without a bus goes to the account's default bus.
                let bus = entry
                    .get("EventBusName")
                    .and_then(Value::as_str)
                    .unwrap_or("default");
                push_unique(&mut out, json!({ "bus": bus }));
            }
            out.extend(text("EventBusName").map(|b| json!({ "bus": b })));
        }
        "SSM" => {
            out.extend(text("Name").map(|n| json!({ "parameter": n })));
            let names = body.get("Names").and_then(Value::as_array);
            out.extend(names.into_iter().flatten().map(|n| json!({ "parameter": n })));
        }
        "Secrets Manager" => out.extend(text("SecretId").map(|s| json!({ "secret": s }))),
        _ => {}
    }
    out
}

fn dynamodb_resources(body: &Value, out: &mut Vec<Value>) {
    if let Some(table) = body.get("TableName").and_then(Value::as_str) {
        let mut r = Map::new();
        r.insert("table".into(), table.into());
        if let Some(index) = body.get("IndexName").and_then(Value::as_str) {
            r.insert("index".into(), index.into());
        }
        out.push(Value::Object(r));
    }
    // BatchGetItem, BatchWriteItem: one entry per table.
    if let Some(tables) = body.get("RequestItems").and_then(Value::as_object) {
        out.extend(tables.keys().map(|t| json!({ "table": t })));
    }
    // TransactWriteItems, TransactGetItems: each item is authorized as its own action.
    let items = body.get("TransactItems").and_then(Value::as_array);
    for item in items.into_iter().flatten().filter_map(Value::as_object) {
        for (kind, request) in item {
            if let Some(table) = request.get("TableName").and_then(Value::as_str) {
                push_unique(out, json!({ "table": table, "item": kind }));
            }
        }
    }
}

fn push_unique(out: &mut Vec<Value>, v: Value) {
    if !out.contains(&v) {
        out.push(v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_query_names_its_table_and_index() {
        let body =
            json!({"TableName": "t-Aggregates", "IndexName": "changes", "KeyConditionExpression": "pk = :p"});
        assert_eq!(
            resources("DynamoDB", &body),
            [json!({"table": "t-Aggregates", "index": "changes"})]
        );
        assert_eq!(
            resources("DynamoDB", &json!({"TableName": "t"})),
            [json!({"table": "t"})]
        );
    }

    #[test]
    fn a_transaction_names_each_item_with_its_kind_once() {
        let body = json!({"TransactItems": [
            {"Put": {"TableName": "events", "Item": {}}},
            {"Update": {"TableName": "aggregates", "Key": {}}},
            {"Put": {"TableName": "events", "Item": {}}},
            {"ConditionCheck": {"TableName": "billing", "Key": {}}},
        ]});
        assert_eq!(
            resources("DynamoDB", &body),
            [
                json!({"table": "events", "item": "Put"}),
                json!({"table": "aggregates", "item": "Update"}),
                json!({"table": "billing", "item": "ConditionCheck"}),
            ]
        );
    }

    #[test]
    fn a_batch_names_each_table() {
        let body = json!({"RequestItems": {"rejected": [{"DeleteRequest": {"Key": {}}}]}});
        assert_eq!(resources("DynamoDB", &body), [json!({"table": "rejected"})]);
    }

    #[test]
    fn queues_buses_parameters_and_secrets() {
        let url = "http://localhost/123456789012/q";
        assert_eq!(
            resources("SQS", &json!({"QueueUrl": url, "Entries": []})),
            [json!({"queue": url})]
        );
        let events = json!({"Entries": [{"EventBusName": "b"}, {"EventBusName": "b"}, {"Detail": "{}"}]});
        assert_eq!(
            resources("EventBridge", &events),
            [json!({"bus": "b"}), json!({"bus": "default"})]
        );
        assert_eq!(
            resources("SSM", &json!({"Name": "/k"})),
            [json!({"parameter": "/k"})]
        );
        assert_eq!(
            resources("Secrets Manager", &json!({"SecretId": "s"})),
            [json!({"secret": "s"})]
        );
        assert!(resources("STS", &json!({})).is_empty());
    }
}
