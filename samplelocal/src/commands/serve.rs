//! `tributary serve`: the approval links, the query API and the operator's
//! console on this machine. Requests to `/approvals/<id>` go to the
//! approval-callback function and `/<served name>` (`/sales`,
//! `/sales/recent`) to the query-api function, exactly as a function URL
//! would deliver them; every other page is the console (console.rs).
//! Requests are handled one at a time, on loopback only.

use crate::local::LocalRuntime;
use anyhow::{Context, Result};
use serde_json::{json, Value};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use tributary_core::approvals;

const MAX_BODY: usize = 64 * 1024;

pub async fn run(rt: &LocalRuntime, port: u16) -> Result<()> {
    serve(rt, port, false).await
}

/// Serve until no approval is pending any more (`demo --interactive`).
pub async fn until_decided(rt: &LocalRuntime, port: u16) -> Result<()> {
    serve(rt, port, true).await
}

async fn serve(rt: &LocalRuntime, port: u16, until_decided: bool) -> Result<()> {
    let listener = TcpListener::bind(("127.0.0.1", port)).with_context(|| {
        format!("cannot listen on 127.0.0.1:{port} (is another `tributary serve` running?)")
    })?;
    let addr = listener.local_addr()?;
    println!("tributary serve: listening on http://{addr}  (console: http://{addr}/)");
    std::io::stdout().flush()?;
    // Browsers open sockets they may never use (pre-connect) and keep others
    // idle; each connection is read on its own thread so none of them holds
    // up the rest. Requests are then handled one at a time, in arrival order.
    let (requests, arrived) = std::sync::mpsc::channel::<(TcpStream, Result<Request>)>();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            let requests = requests.clone();
            std::thread::spawn(move || match read_request(&mut stream) {
                Ok(None) => {}
                Ok(Some(request)) => {
                    let _ = requests.send((stream, Ok(request)));
                }
                Err(e) => {
                    let _ = requests.send((stream, Err(e)));
                }
            });
        }
    });
    while let Ok((mut stream, request)) = arrived.recv() {
        let response = match request {
            Ok(request) => respond(rt, request).await,
            Err(e) => {
                json!({"statusCode": 400, "headers": {"content-type": "text/plain"}, "body": format!("bad request: {e}")})
            }
        };
        let _ = write_response(&mut stream, &response);
        if until_decided
            && approvals::pending(&rt.adapters.state, chrono::Utc::now())
                .await
                .is_ok_and(|p| p.is_empty())
        {
            return Ok(());
        }
    }
    Ok(())
}

struct Request {
    method: String,
    path: String,
    query: String,
    body: String,
}

fn read_request(stream: &mut TcpStream) -> Result<Option<Request>> {
    stream.set_read_timeout(Some(std::time::Duration::from_secs(10)))?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let target = parts.next().unwrap_or("/").to_string();
    let mut length = 0usize;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header)? == 0 || header == "\r\n" || header == "\n" {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    anyhow::ensure!(length <= MAX_BODY, "body larger than {MAX_BODY} bytes");
    let mut body = vec![0u8; length];
    reader.read_exact(&mut body)?;
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    Ok(Some(Request {
        method,
        path: path.to_string(),
        query: query.to_string(),
        body: String::from_utf8_lossy(&body).into_owned(),
    }))
}

fn write_response(stream: &mut TcpStream, response: &Value) -> std::io::Result<()> {
    let status = response["statusCode"].as_u64().unwrap_or(500);
    let body = response["body"].as_str().unwrap_or_default();
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\ncontent-length: {}\r\nconnection: close\r\n",
        reason(status),
        body.len()
    );
    for (k, v) in response["headers"].as_object().into_iter().flatten() {
        head.push_str(&format!("{k}: {}\r\n", v.as_str().unwrap_or_default()));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body.as_bytes())
}

fn reason(status: u64) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        409 => "Conflict",
        410 => "Gone",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

async fn respond(rt: &LocalRuntime, req: Request) -> Value {
    if req.path.starts_with("/approvals/") {
        // Exactly what a Lambda function URL hands the function.
        let event = json!({
            "version": "2.0", "rawPath": req.path, "rawQueryString": req.query,
            "requestContext": {"http": {"method": req.method, "path": req.path, "sourceIp": "127.0.0.1"}},
            "body": req.body, "isBase64Encoded": false,
        });
        let response = match tributary_handlers::invoke(&rt.services(), "approval-callback", event)
            .await
        {
            Ok(r) => r,
            Err(e) => {
                json!({"statusCode": 400, "headers": {"content-type": "text/plain"}, "body": e.message})
            }
        };
        // A decision answered a task token: resume that execution now.
        if let Err(e) = rt.apply_callbacks() {
            eprintln!("tributary serve: resuming the execution failed: {e:#}");
        }
        return response;
    }
    let first_segment = req
        .path
        .trim_start_matches('/')
        .split('/')
        .next()
        .unwrap_or("");
    if !first_segment.is_empty() && rt.config.served_stream(first_segment).is_some() {
        let event = crate::commands::stream::query_event(&req.path, &req.query);
        return match tributary_handlers::invoke(&rt.services(), "query-api", event).await {
            Ok(r) => r,
            Err(e) => {
                json!({"statusCode": 500, "headers": {"content-type": "text/plain"}, "body": e.message})
            }
        };
    }
    if req.method == "GET" {
        if let Some(page) = crate::commands::console::page(rt, &req.path, &req.query).await {
            return page;
        }
    }
    json!({"statusCode": 404, "headers": {"content-type": "text/plain"}, "body": "not found"})
}
