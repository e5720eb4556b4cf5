//! The metrics listener (`--metrics-addr`): a small read-only HTTP/1.1 server.
//!
//! - `GET /metrics`: Prometheus text ([`crate::metrics::prometheus`]).
//! - `GET /status.json`: this node's status as JSON, with the other nodes' metrics
//!   addresses; any origin may read it (`Access-Control-Allow-Origin: *`), so that the status
//!   page served by one node can poll all of them.
//! - `GET /`: the live status page of the cluster (`status.html`): one row per node, polled
//!   every second, updated without reloading.
//!
//! Requests are untrusted: the head must arrive within [`REQUEST_TIMEOUT`] and fit in
//! [`MAX_HEAD_BYTES`], is parsed by `httparse`, and anything but `GET` (or `HEAD`) of a known
//! path gets a 4xx answer. Every response closes its connection. The listener decides
//! nothing about the node: it only renders the latest status.

use crate::driver::DriverHandle;
use crate::metrics::{Figures, prometheus, status_json};
use crate::server::ServerStats;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// The status page (self-contained: inline style and script).
const STATUS_PAGE: &str = include_str!("status.html");

/// Longest a request head may take to arrive.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Largest request head accepted.
pub const MAX_HEAD_BYTES: usize = 8 * 1024;

/// What the listener renders from.
#[derive(Clone)]
pub struct Sources {
    /// The driver, for its latest status.
    pub driver: DriverHandle,
    /// The client server's figures.
    pub stats: Arc<ServerStats>,
    /// The other nodes' metrics addresses, by id.
    pub cluster: BTreeMap<u64, String>,
    /// When the node started.
    pub started: Instant,
}

impl Sources {
    fn figures(&self) -> Figures {
        Figures {
            status: self.driver.latest_status(),
            connected_clients: self.stats.connected_clients(),
            output_limit_disconnections: self.stats.output_limit_disconnections(),
            commands: self.stats.commands(),
            uptime_seconds: self.started.elapsed().as_secs_f64(),
        }
    }
}

/// Serves `listener` until `shutdown` becomes true.
pub async fn serve(listener: TcpListener, sources: Sources, mut shutdown: watch::Receiver<bool>) {
    loop {
        let (socket, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "[METRICS] accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let sources = sources.clone();
        tokio::spawn(async move {
            if let Err(error) = answer(socket, &sources).await {
                tracing::debug!(%remote, %error, "[METRICS] request failed");
            }
        });
    }
}

/// A response: status line, content type, body.
struct Response {
    status: &'static str,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn text(status: &'static str, body: &str) -> Response {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{body}\n"),
        }
    }
}

/// Reads one request head and writes its response.
async fn answer(mut socket: TcpStream, sources: &Sources) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut buffer = [0u8; 1024];
        loop {
            let n = socket.read(&mut buffer).await?;
            if n == 0 {
                return Ok(false);
            }
            head.extend_from_slice(&buffer[..n]);
            if head.windows(4).any(|w| w == b"\r\n\r\n") {
                return Ok(true);
            }
            if head.len() > MAX_HEAD_BYTES {
                return Ok(true);
            }
        }
    })
    .await;
    let response = match read {
        Err(_) => Response::text(
            "408 Request Timeout",
            "the request head did not arrive within 5 s",
        ),
        Ok(Err(error)) => return Err(error),
        Ok(Ok(false)) => return Ok(()),
        Ok(Ok(true)) if head.len() > MAX_HEAD_BYTES => Response::text(
            "431 Request Header Fields Too Large",
            "the request head passed 8 KiB",
        ),
        Ok(Ok(true)) => route(&head, sources),
    };
    let head_only = head.starts_with(b"HEAD ");
    let mut bytes = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\nAccess-Control-Allow-Origin: *\r\nConnection: close\r\n\r\n",
        response.status,
        response.content_type,
        response.body.len()
    )
    .into_bytes();
    if !head_only {
        bytes.extend_from_slice(response.body.as_bytes());
    }
    socket.write_all(&bytes).await?;
    socket.shutdown().await
}

/// The response to a complete request head.
fn route(head: &[u8], sources: &Sources) -> Response {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) | Err(_) => {
            return Response::text("400 Bad Request", "malformed HTTP request head");
        }
    }
    if !matches!(request.method, Some("GET" | "HEAD")) {
        return Response::text("405 Method Not Allowed", "only GET and HEAD are served");
    }
    let path = request.path.unwrap_or("/");
    let path = path.split('?').next().unwrap_or(path);
    match path {
        "/metrics" => Response {
            status: "200 OK",
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: prometheus(&sources.figures()),
        },
        "/status.json" => Response {
            status: "200 OK",
            content_type: "application/json",
            body: status_json(&sources.figures(), &sources.cluster),
        },
        "/" => Response {
            status: "200 OK",
            content_type: "text/html; charset=utf-8",
            body: STATUS_PAGE.to_string(),
        },
        _ => Response::text(
            "404 Not Found",
            "not found: this listener serves /metrics, /status.json and /",
        ),
    }
}
