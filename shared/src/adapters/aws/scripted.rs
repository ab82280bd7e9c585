//! A scripted DynamoDB endpoint for the adapters' tests: the answers the local endpoint never
//! gives (an unprocessed batch item, a page split, a transaction cancelled by a conflict on every
//! attempt) are written by the test, and every request the SDK sends is recorded.

use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::Client;
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};

type Script = dyn Fn(usize, &Value) -> Value + Send + Sync;

/// An HTTP endpoint that answers the `n`th request (from 0) with `script(n, body)`, and the
/// JSON bodies it received. An answer with a `__type` is an error (HTTP 400), as DynamoDB
/// sends its service errors.
pub(crate) struct Endpoint {
    pub(crate) client: Client,
    requests: Arc<Mutex<Vec<Value>>>,
}

impl Endpoint {
    pub(crate) fn new(script: impl Fn(usize, &Value) -> Value + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let script: Arc<Script> = Arc::new(script);
        let seen = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (seen, script) = (seen.clone(), script.clone());
                std::thread::spawn(move || serve(stream, &seen, &*script));
            }
        });
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("a", "b", None, None, "test"))
            .endpoint_url(format!("http://{addr}"))
            .build();
        Endpoint {
            client: Client::from_conf(config),
            requests,
        }
    }

    pub(crate) fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }
}

/// DynamoDB's answer to a `TransactWriteItems` cancelled with these reason codes, one per item
/// (`"None"` for an item that was not the cause).
pub(crate) fn cancelled(codes: &[&str]) -> Value {
    let reasons: Vec<Value> = codes
        .iter()
        .map(|c| match *c {
            "None" => json!({ "Code": "None" }),
            "TransactionConflict" => {
                json!({ "Code": c, "Message": "Transaction is ongoing for the item" })
            }
            _ => json!({ "Code": c, "Message": "The conditional request failed" }),
        })
        .collect();
    json!({
        "__type": "com.amazonaws.dynamodb.v20120810#TransactionCanceledException",
        "message": format!("Transaction cancelled, please refer cancellation reasons for specific reasons [{}]", codes.join(", ")),
        "CancellationReasons": reasons,
    })
}

/// The operation of a request: the `X-Amz-Target` is not recorded, so it is told by its body.
pub(crate) fn is_transaction(body: &Value) -> bool {
    body.get("TransactItems").is_some()
}

/// Answers the requests of one connection (kept alive) until the client closes it.
fn serve(stream: TcpStream, seen: &Mutex<Vec<Value>>, script: &Script) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut length = 0;
        let mut line = String::new();
        loop {
            line.clear();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if line == "\r\n" {
                break;
            }
            if let Some((name, value)) = line.split_once(':') {
                if name.eq_ignore_ascii_case("content-length") {
                    length = value.trim().parse().unwrap();
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let body: Value = serde_json::from_slice(&body).unwrap();
        let n = {
            let mut seen = seen.lock().unwrap();
            seen.push(body.clone());
            seen.len() - 1
        };
        let answer = script(n, &body);
        let status = if answer.get("__type").is_some() {
            "400 Bad Request"
        } else {
            "200 OK"
        };
        let answer = answer.to_string();
        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: application/x-amz-json-1.0\r\ncontent-length: {}\r\n\r\n",
            answer.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(answer.as_bytes()).is_err() {
            return;
        }
    }
}
