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
            if head_complete(&head) || head.len() > MAX_HEAD_BYTES {
                return Ok(true);
            }
        }
    })
    .await;
    let (response, head_only) = match read {
        Err(_) => (
            Response::text(
                "408 Request Timeout",
                "the request head did not arrive within 5 s",
            ),
            false,
        ),
        Ok(Err(error)) => return Err(error),
        Ok(Ok(false)) => return Ok(()),
        Ok(Ok(true)) if head.len() > MAX_HEAD_BYTES => (
            Response::text(
                "431 Request Header Fields Too Large",
                "the request head passed 8 KiB",
            ),
            false,
        ),
        Ok(Ok(true)) => respond(&head, sources),
    };
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

/// What a request asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Page {
    /// `/metrics`.
    Metrics,
    /// `/status.json`.
    Status,
    /// `/`, the status page.
    Index,
}

/// A request refused: the response's status line and text.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Refused {
    /// Status code and reason, such as `404 Not Found`.
    pub status: &'static str,
    /// What was wrong, for the body.
    pub reason: &'static str,
}

/// Reads a request head (untrusted bytes, up to the blank line): the page it asks for and
/// whether only the head is wanted (`HEAD`), or why it is refused.
pub fn parse_request(head: &[u8]) -> Result<(Page, bool), Refused> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut request = httparse::Request::new(&mut headers);
    match request.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        Ok(httparse::Status::Partial) | Err(_) => {
            return Err(Refused {
                status: "400 Bad Request",
                reason: "malformed HTTP request head",
            });
        }
    }
    let head_only = match request.method {
        Some("GET") => false,
        Some("HEAD") => true,
        _ => {
            return Err(Refused {
                status: "405 Method Not Allowed",
                reason: "only GET and HEAD are served",
            });
        }
    };
    let path = request.path.unwrap_or("/");
    let page = match path.split('?').next().unwrap_or(path) {
        "/metrics" => Page::Metrics,
        "/status.json" => Page::Status,
        "/" => Page::Index,
        _ => {
            return Err(Refused {
                status: "404 Not Found",
                reason: "not found: this listener serves /metrics, /status.json and /",
            });
        }
    };
    Ok((page, head_only))
}

/// The response to a complete request head, and whether to send only its head.
fn respond(head: &[u8], sources: &Sources) -> (Response, bool) {
    match parse_request(head) {
        Err(refused) => (Response::text(refused.status, refused.reason), false),
        Ok((Page::Metrics, head_only)) => (
            Response {
                status: "200 OK",
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: prometheus(&sources.figures()),
            },
            head_only,
        ),
        Ok((Page::Status, head_only)) => (
            Response {
                status: "200 OK",
                content_type: "application/json",
                body: status_json(&sources.figures(), &sources.cluster),
            },
            head_only,
        ),
        Ok((Page::Index, head_only)) => (
            Response {
                status: "200 OK",
                content_type: "text/html; charset=utf-8",
                body: STATUS_PAGE.to_string(),
            },
            head_only,
        ),
    }
}

/// Whether `head` holds a whole request head: a blank line, its line ends `\r\n` or a bare
/// `\n` (HTTP/1.1 lets a server take either, and `httparse` does).
fn head_complete(head: &[u8]) -> bool {
    head.windows(2).any(|w| w == b"\n\n") || head.windows(3).any(|w| w == b"\n\r\n")
}

/// Fuzz target `metrics_request`: any bytes as a request head. Promises: no panic, and a
/// page only for a complete `GET` or `HEAD` head.
#[cfg(feature = "fuzzing")]
pub fn fuzz_request(data: &[u8]) {
    if parse_request(data).is_ok() {
        // Empty lines before the request line are skipped, as HTTP/1.1 allows.
        let line = &data[data
            .iter()
            .take_while(|b| matches!(b, b'\r' | b'\n'))
            .count()..];
        assert!(line.starts_with(b"GET ") || line.starts_with(b"HEAD "));
        assert!(head_complete(data), "a page for an unfinished head");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_routed_or_refused_with_a_reason() {
        assert_eq!(
            parse_request(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Ok((Page::Metrics, false))
        );
        assert_eq!(
            parse_request(b"HEAD /status.json?x=1 HTTP/1.1\r\n\r\n"),
            Ok((Page::Status, true))
        );
        assert_eq!(
            parse_request(b"GET / HTTP/1.0\r\n\r\n"),
            Ok((Page::Index, false))
        );
        let status = |head: &[u8]| parse_request(head).unwrap_err().status;
        assert_eq!(
            status(b"POST /metrics HTTP/1.1\r\n\r\n"),
            "405 Method Not Allowed"
        );
        assert_eq!(status(b"GET /etc/passwd HTTP/1.1\r\n\r\n"), "404 Not Found");
        assert_eq!(status(b"\x00\x01garbage\r\n\r\n"), "400 Bad Request");
        assert_eq!(status(b"GET /metrics HTTP/1.1\r\n"), "400 Bad Request");
    }
}
