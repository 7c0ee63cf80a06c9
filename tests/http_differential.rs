//! A differential test of the request side: random well-formed requests
//! go through the real binary, and the backend reads each with a strict
//! parser (httparse, CRLF only). Each must arrive as exactly one request
//! with the client's method, target, end-to-end headers (in order per
//! name) and body, plus sluice's `X-Forwarded-*`, and nothing else.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use sluice_testkit::{BackendConn, RawClient, RawRequest, ScriptedBackend};

/// xorshift64*: a small seeded generator, so a failure names its case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, from: &'a [&'a str]) -> &'a str {
        from[self.below(from.len())]
    }

    fn chars(&mut self, alphabet: &[u8], len: usize) -> String {
        (0..len)
            .map(|_| alphabet[self.below(alphabet.len())] as char)
            .collect()
    }
}

/// One generated request: what the client sends and what the backend
/// must see.
struct Case {
    wire: Vec<u8>,
    method: String,
    target: String,
    /// End-to-end headers as sent (names lower-cased).
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

const TCHAR: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~";
const PCHAR: &[u8] =
    b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@";
const VCHAR: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~";

fn generate(rng: &mut Rng) -> Case {
    let method = rng
        .pick(&["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PURGE"])
        .to_string();
    let mut target = String::new();
    for _ in 0..1 + rng.below(4) {
        target.push('/');
        let len = rng.below(12);
        target.push_str(&rng.chars(PCHAR, len));
        if rng.below(4) == 0 {
            target.push_str("%2F");
        }
    }
    if rng.below(2) == 0 {
        target.push('?');
        let len = 1 + rng.below(20);
        target.push_str(&rng.chars(PCHAR, len));
        target.push_str("/?");
    }
    let host = format!("shop{}.example:{}", rng.below(100), 1 + rng.below(65535));
    let mut headers = vec![("host".to_string(), host)];
    let names: Vec<String> = (0..1 + rng.below(5))
        .map(|_| {
            let len = 1 + rng.below(10);
            format!("x-{}", rng.chars(TCHAR, len))
        })
        .collect();
    for _ in 0..rng.below(12) {
        let name = if rng.below(3) == 0 {
            rng.pick(&[
                "accept",
                "user-agent",
                "cookie",
                "cache-control",
                "authorization",
            ])
            .to_string()
        } else {
            names[rng.below(names.len())].clone()
        };
        let len = rng.below(40);
        let value = rng.chars(VCHAR, len).trim().to_string();
        headers.push((name, value));
    }
    let (framing, body) = match rng.below(3) {
        0 => (None, Vec::new()),
        n => {
            let len = rng.below(3000);
            let body: Vec<u8> = (0..len).map(|_| rng.next() as u8).collect();
            (Some(n == 1), body)
        }
    };
    let mut wire = format!("{method} {target} HTTP/1.1\r\n").into_bytes();
    for (name, value) in &headers {
        // Names in whatever case the client likes.
        let name: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_lowercase() && c < 'm' {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        wire.extend_from_slice(format!("{name}: {value}\r\n").as_bytes());
    }
    match framing {
        None => wire.extend_from_slice(b"\r\n"),
        Some(true) => {
            wire.extend_from_slice(format!("content-length: {}\r\n\r\n", body.len()).as_bytes());
            wire.extend_from_slice(&body);
        }
        Some(false) => {
            wire.extend_from_slice(b"transfer-encoding: chunked\r\n\r\n");
            let mut rest = &body[..];
            while !rest.is_empty() {
                let n = (1 + rng.below(700)).min(rest.len());
                wire.extend_from_slice(format!("{n:X}\r\n").as_bytes());
                wire.extend_from_slice(&rest[..n]);
                wire.extend_from_slice(b"\r\n");
                rest = &rest[n..];
            }
            wire.extend_from_slice(b"0\r\n\r\n");
        }
    }
    let mut end_to_end = headers;
    if let Some(true) = framing {
        end_to_end.push(("content-length".into(), body.len().to_string()));
    }
    Case {
        wire,
        method,
        target,
        headers: end_to_end,
        body,
    }
}

/// The headers the backend must see: the client's end-to-end ones (each
/// name's values in order) and `X-Forwarded-*`. A body sent chunked goes on
/// chunked, one sent with a length keeps it.
fn check(case: &Case, seen: &RawRequest, n: usize) {
    let what = format!(
        "case {n}: {}",
        String::from_utf8_lossy(&case.wire[..case.wire.len().min(400)])
    );
    assert_eq!(seen.method, case.method, "{what}");
    assert_eq!(seen.target, case.target, "{what}");
    assert_eq!(seen.body, case.body, "{what}");
    let mut names: Vec<&str> = case.headers.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    names.dedup();
    for name in names {
        let want: Vec<&str> = case
            .headers
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect();
        let got: Vec<&str> = seen
            .headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(got, want, "{name} in {what}");
    }
    let host = case.headers[0].1.as_str();
    assert_eq!(seen.header("x-forwarded-for"), Some("127.0.0.1"), "{what}");
    assert_eq!(seen.header("x-forwarded-proto"), Some("http"), "{what}");
    assert_eq!(seen.header("x-forwarded-host"), Some(host), "{what}");
    let chunked = !case.body.is_empty() && !case.headers.iter().any(|(n, _)| n == "content-length");
    let extra = 3 + usize::from(chunked);
    assert_eq!(
        seen.headers.len(),
        case.headers.len() + extra,
        "nothing else is added: {:?} for {what}",
        seen.headers
    );
    if chunked {
        assert_eq!(seen.header("transfer-encoding"), Some("chunked"), "{what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_forwarded_request_is_exactly_the_one_the_client_sent() {
    // After each request the backend notes whether bytes were left over:
    // anything beyond one request would be a second (smuggled) one.
    let leftovers = Arc::new(Mutex::new(Vec::new()));
    let l = leftovers.clone();
    let b = ScriptedBackend::start(move |mut c: BackendConn| {
        let leftovers = l.clone();
        async move {
            while c.read_request().await.is_some() {
                leftovers.lock().unwrap().push(c.unread().len());
                if !c
                    .write("HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
                    .await
                {
                    return;
                }
            }
        }
    })
    .await;
    let (_node, listen) = node_over(&[b.addr()], "60s", "300s").await;

    const CASES: usize = 400;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut c = RawClient::connect(&listen).await;
    for n in 0..CASES {
        let case = generate(&mut rng);
        c.send(&case.wire).await;
        let r = c.response(&case.method).await.expect("an answer");
        assert_eq!(r.status, 200, "case {n}: {}", r.text());
        let seen = b.requests().pop().expect("the backend got it");
        check(&case, &seen, n);
    }
    assert_eq!(
        b.requests().len(),
        CASES,
        "one backend request per client request"
    );
    let leftovers = leftovers.lock().unwrap();
    assert!(
        leftovers.iter().all(|n| *n == 0),
        "bytes past a request: {leftovers:?}"
    );
}
