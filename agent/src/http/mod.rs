//! The monitoring endpoint (`http.enabled`): HTTP/1.1 on a TCP listener, one request per
//! connection, served on the main thread's tokio runtime beside the signal handling.
//!
//! Owns the listener. Request heads are parsed by `httparse`; what to answer is decided in
//! [`routes`]. Invariant: a client that does not send a complete request head within
//! `HEAD_TIMEOUT` (5 s) and `MAX_HEAD` (16 KiB) is dropped, so a slow or hostile client holds nothing
//! for long; a request body is never read (no route takes one).

pub mod routes;

use crate::config::HttpConfig;
use crate::status::Status;
use anyhow::Context as _;
use routes::{Ctx, Request, Response};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MAX_HEAD: usize = 16 * 1024;
const HEAD_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Server {
    listener: TcpListener,
    ctx: Arc<Ctx>,
}

impl Server {
    /// Binds `http.host:http.port` (an error names them: a port in use stops start-up).
    pub async fn bind(cfg: &HttpConfig, status: Arc<Status>, name: String, hostname: String) -> anyhow::Result<Server> {
        let listener = TcpListener::bind((cfg.host.as_str(), cfg.port))
            .await
            .with_context(|| format!("http: cannot listen on {}:{}", cfg.host, cfg.port))?;
        let worker_id = listener.local_addr()?.to_string();
        Ok(Server { listener, ctx: Arc::new(Ctx { status, http: cfg.clone(), name, hostname, worker_id }) })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener.local_addr().expect("bound")
    }

    /// Answers requests until the runtime stops.
    pub async fn serve(self) {
        tracing::info!(address = %self.ctx.worker_id, control = self.ctx.http.control, token = self.ctx.http.token.is_some(), "http endpoint listening");
        loop {
            match self.listener.accept().await {
                Ok((stream, _)) => {
                    let ctx = self.ctx.clone();
                    tokio::spawn(async move {
                        if let Err(e) = answer(stream, &ctx).await {
                            tracing::debug!(error = %e, "http connection ended");
                        }
                    });
                }
                Err(e) => {
                    // Out of descriptors, typically: wait instead of spinning.
                    tracing::warn!(error = %e, "http: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

async fn answer(mut stream: TcpStream, ctx: &Ctx) -> std::io::Result<()> {
    let response = match tokio::time::timeout(HEAD_TIMEOUT, read_head(&mut stream)).await {
        Ok(Ok(Some(req))) => routes::handle(&req, ctx),
        Ok(Ok(None)) => Response { status: 400, content_type: "text/plain", body: "bad request\n".into() },
        Ok(Err(e)) => return Err(e),
        Err(_) => return Ok(()),
    };
    let head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n{}\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len(),
        if response.status == 401 { "WWW-Authenticate: Bearer\r\n" } else { "" },
    );
    stream.write_all(head.as_bytes()).await?;
    stream.write_all(response.body.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads until the request head is complete; `None` when it is malformed or too long.
async fn read_head(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::with_capacity(1024);
    loop {
        let mut chunk = [0u8; 1024];
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(&buf) {
            Ok(httparse::Status::Complete(_)) => {
                let target = parsed.path.unwrap_or("/");
                let (path, query) = target.split_once('?').unwrap_or((target, ""));
                let authorization = parsed
                    .headers
                    .iter()
                    .find(|h| h.name.eq_ignore_ascii_case("authorization"))
                    .map(|h| String::from_utf8_lossy(h.value).into_owned());
                return Ok(Some(Request {
                    method: parsed.method.unwrap_or("").to_string(),
                    path: path.to_string(),
                    query: query.to_string(),
                    authorization,
                }));
            }
            Ok(httparse::Status::Partial) if buf.len() < MAX_HEAD => {}
            _ => return Ok(None),
        }
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "",
    }
}
