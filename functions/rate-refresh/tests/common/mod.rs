//! A tiny HTTP/1.1 server on 127.0.0.1 that answers recorded-format payloads by path, so the
//! tests never reach the internet.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One canned answer.
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: String,
    pub content_type: &'static str,
    /// Wait this long before answering (past the client's timeout to test timeouts).
    pub delay: Duration,
    /// The HTTP `Date` header to send, if any.
    pub date: Option<String>,
}

impl Answer {
    pub fn json(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            status,
            body: body.into(),
            content_type: "application/json",
            delay: Duration::ZERO,
            date: None,
        }
    }

    pub fn xml(body: impl Into<String>) -> Answer {
        Answer {
            content_type: "text/xml",
            ..Answer::json(200, body)
        }
    }

    pub fn html(status: u16, body: impl Into<String>) -> Answer {
        Answer {
            content_type: "text/html",
            ..Answer::json(status, body)
        }
    }

    pub fn delayed(self, delay: Duration) -> Answer {
        Answer { delay, ..self }
    }

    pub fn dated(self, date: impl Into<String>) -> Answer {
        Answer {
            date: Some(date.into()),
            ..self
        }
    }
}

/// A running server. Answers 404 for paths it does not know.
pub struct Server {
    pub base_url: String,
    routes: Arc<Mutex<HashMap<String, Answer>>>,
    hits: Arc<AtomicUsize>,
}

impl Server {
    pub async fn start() -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind 127.0.0.1");
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let routes: Arc<Mutex<HashMap<String, Answer>>> = Arc::default();
        let hits = Arc::new(AtomicUsize::new(0));
        let (r, h) = (routes.clone(), hits.clone());
        tokio::spawn(async move {
            while let Ok((mut socket, _)) = listener.accept().await {
                let (routes, hits) = (r.clone(), h.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut chunk = [0u8; 4096];
                    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
                        match socket.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    hits.fetch_add(1, Ordering::SeqCst);
                    let head = String::from_utf8_lossy(&buf);
                    let target = head.split_whitespace().nth(1).unwrap_or("/").to_string();
                    let answer = routes
                        .lock()
                        .unwrap()
                        .get(&target)
                        .cloned()
                        .unwrap_or_else(|| Answer::json(404, format!("no route for {target}")));
                    tokio::time::sleep(answer.delay).await;
                    let date = answer.date.map(|d| format!("Date: {d}\r\n")).unwrap_or_default();
                    let response = format!(
                        "HTTP/1.1 {} Canned\r\nContent-Type: {}\r\nContent-Length: {}\r\n{date}Connection: close\r\n\r\n{}",
                        answer.status,
                        answer.content_type,
                        answer.body.len(),
                        answer.body
                    );
                    let _ = socket.write_all(response.as_bytes()).await;
                    let _ = socket.shutdown().await;
                });
            }
        });
        Server {
            base_url,
            routes,
            hits,
        }
    }

    /// Answers `answer` to requests for `path_and_query` from now on.
    pub fn route(&self, path_and_query: &str, answer: Answer) {
        self.routes
            .lock()
            .unwrap()
            .insert(path_and_query.to_string(), answer);
    }

    pub fn clear(&self) {
        self.routes.lock().unwrap().clear();
    }

    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}
