//! Slow and stuck clients against the real binary: half-sent headers and bodies
//! are cut off at their timeouts while normal requests go on, and SIGTERM with
//! such connections open still exits within `server.shutdown_timeout_ms`.

mod common;

use std::time::{Duration, Instant};

use common::Process;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;

fn addr(server: &Process) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// Opens a connection that sends part of a request to `path` and then stalls:
/// half its headers, or its headers and half its body.
fn stall(addr: &str, path: &str, half_body: bool) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    let head = if half_body {
        format!(
            "POST {path} HTTP/1.1\r\nHost: kiln\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{{\"instances\": [[5.1,"
        )
    } else {
        format!("POST {path} HTTP/1.1\r\nHost: kiln\r\nContent-Ty")
    };
    s.write_all(head.as_bytes()).unwrap();
    s
}

/// Reads until the server closes the connection (20 s at most); returns what it
/// sent, or `None` if the connection was still open.
fn until_closed(mut s: TcpStream) -> Option<String> {
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return None;
            }
            Err(_) => break, // reset: closed
        }
    }
    Some(String::from_utf8_lossy(&got).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_off_and_others_are_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = Process::serve(
        dir.path(),
        &[
            ("KILN_SERVER__HEADER_TIMEOUT_MS", "1000"),
            ("KILN_SERVER__BODY_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    let addr = addr(&server);
    let opened = Instant::now();
    let mut stalled = Vec::new();
    // Half on /predict, half on OIP v2's infer: a body waits at its model's
    // door to be read, and a slow one must not keep the door shut.
    for i in 0..200 {
        let path = if i % 4 < 2 {
            "/predict"
        } else {
            "/v2/models/kiln/infer"
        };
        stalled.push(stall(&addr, path, i % 2 == 1));
    }
    // While 200 connections stall, normal requests are answered.
    let client = reqwest::Client::new();
    for _ in 0..20 {
        predict_ok(&client, &server).await;
        let r = client
            .post(server.url("/v2/models/kiln/infer"))
            .json(
                &json!({"inputs": [{"name": "input", "shape": [1, 4], "datatype": "FP32",
                "data": [5.1, 3.5, 1.4, 0.2]}]}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{}", r.text().await.unwrap());
    }
    // Each stalled connection is closed by the server at its timeout (1 s, plus
    // slack for a busy machine), never left open.
    let closings: Vec<_> = stalled
        .into_iter()
        .map(|s| std::thread::spawn(move || until_closed(s)))
        .collect();
    let mut answered_504 = 0;
    for c in closings {
        let sent = c.join().unwrap().expect("a stalled connection stayed open");
        if sent.starts_with("HTTP/1.1 504") {
            answered_504 += 1;
        }
    }
    assert!(opened.elapsed() < Duration::from_secs(20));
    // Half-sent bodies are answered 504 before the close.
    assert_eq!(answered_504, 100);
    predict_ok(&client, &server).await;
}

async fn predict_ok(client: &reqwest::Client, server: &Process) {
    let r = client
        .post(server.url("/predict"))
        .json(&json!({"instances": [[5.1, 3.5, 1.4, 0.2]]}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_stalled_connections_exits_within_the_shutdown_timeout() {
    let dir = tempfile::tempdir().unwrap();
    // The stalled requests would wait a minute for their bodies; shutdown waits 1 s.
    let mut server = Process::serve(
        dir.path(),
        &[
            ("KILN_SERVER__HEADER_TIMEOUT_MS", "60000"),
            ("KILN_SERVER__BODY_TIMEOUT_MS", "60000"),
            ("KILN_SERVER__SHUTDOWN_TIMEOUT_MS", "1000"),
        ],
    )
    .await;
    let addr = addr(&server);
    let mut stalled = Vec::new();
    for i in 0..50 {
        stalled.push(stall(&addr, "/predict", i % 2 == 1));
    }
    // Let the server see every request start.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let asked = Instant::now();
    server.sigterm();
    let code = tokio::task::spawn_blocking(move || server.wait_exit())
        .await
        .unwrap();
    let took = asked.elapsed();
    assert_eq!(code, Some(0));
    assert!(
        took < Duration::from_secs(15),
        "exit took {took:?} with a 1 s shutdown timeout"
    );
    drop(stalled);
}
