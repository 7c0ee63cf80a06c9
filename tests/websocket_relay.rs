//! The WebSocket relay as the two ends see it, on raw sockets: extensions
//! agreed end to end (a compressed session keeps working, and still gets
//! Close 1001 at the drain deadline), and a backend that dies without a
//! Close is passed on as an abrupt close, not turned into a clean one; a
//! client gone before its `101` leaves nothing open on the backend.
#![allow(clippy::unwrap_used, clippy::expect_used)] // a test fails loudly

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use sluice_testkit::{BackendConn, RawClient, ScriptedBackend};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A socket with the bytes read past the last frame.
struct Frames {
    io: TcpStream,
    buf: Vec<u8>,
}

/// One frame: its first byte (FIN, RSV bits, opcode) and its unmasked
/// payload.
#[derive(Debug, PartialEq)]
struct Frame {
    first: u8,
    masked: bool,
    payload: Vec<u8>,
}

impl Frames {
    /// The next frame, or `None` when the connection ends first.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if let Some((frame, used)) = parse(&self.buf) {
                self.buf.drain(..used);
                return Some(frame);
            }
            let mut b = [0u8; 4096];
            match tokio::time::timeout(Duration::from_secs(10), self.io.read(&mut b)).await {
                Ok(Ok(0)) | Ok(Err(_)) => return None,
                Ok(Ok(n)) => self.buf.extend_from_slice(&b[..n]),
                Err(_) => panic!("no frame and no close within 10 s"),
            }
        }
    }

    async fn send(&mut self, first: u8, payload: &[u8], mask: bool) {
        let mut f = vec![first, payload.len() as u8 | if mask { 0x80 } else { 0 }];
        let key = [7u8, 1, 9, 3];
        if mask {
            f.extend_from_slice(&key);
        }
        f.extend(
            payload
                .iter()
                .enumerate()
                .map(|(i, b)| if mask { b ^ key[i % 4] } else { *b }),
        );
        self.io.write_all(&f).await.unwrap();
    }
}

/// A complete frame at the front of `buf` (payloads under 126 bytes).
fn parse(buf: &[u8]) -> Option<(Frame, usize)> {
    if buf.len() < 2 {
        return None;
    }
    let masked = buf[1] & 0x80 != 0;
    let len = usize::from(buf[1] & 0x7f);
    assert!(len < 126, "test frames are small");
    let start = 2 + if masked { 4 } else { 0 };
    if buf.len() < start + len {
        return None;
    }
    let mut payload = buf[start..start + len].to_vec();
    if masked {
        let key = &buf[2..6];
        payload
            .iter_mut()
            .enumerate()
            .for_each(|(i, b)| *b ^= key[i % 4]);
    }
    Some((
        Frame {
            first: buf[0],
            masked,
            payload,
        },
        start + len,
    ))
}

fn close_code(f: &Frame) -> u16 {
    u16::from_be_bytes([f.payload[0], f.payload[1]])
}

/// What the backend saw: its upgrade request's extension offer and the
/// frames the client sent it, in order.
#[derive(Default)]
struct BackendView {
    offer: Option<String>,
    frames: Vec<Frame>,
}

/// A WebSocket backend: accepts the upgrade agreeing to permessage-deflate
/// (as `101` says), sends one compressed (RSV1) message, then echoes every
/// frame as it came; on `/crash` it sends a last message and resets.
async fn ws_backend(view: Arc<Mutex<BackendView>>) -> ScriptedBackend {
    ScriptedBackend::start(move |mut c: BackendConn| {
        let view = view.clone();
        async move {
            let Some(req) = c.read_head().await else {
                return;
            };
            view.lock().unwrap().offer = req.header("sec-websocket-extensions").map(str::to_string);
            c.write(
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
                 sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
                 sec-websocket-extensions: permessage-deflate\r\n\r\n",
            )
            .await;
            let (io, buf) = c.into_parts();
            let mut f = Frames { io, buf };
            if req.target == "/crash" {
                f.send(0x81, b"last words", false).await;
                let _ = f.io.set_zero_linger();
                return;
            }
            f.send(0xC1, b"\xf2\x48\xcd\xc9\xc9\x07\x00", false).await;
            while let Some(frame) = f.next().await {
                let (first, payload) = (frame.first, frame.payload.clone());
                let close = first & 0x0f == 0x8;
                view.lock().unwrap().frames.push(frame);
                if close {
                    return; // the relay closes the rest
                }
                f.send(first, &payload, false).await;
            }
        }
    })
    .await
}

async fn upgrade(listen: &str, path: &str) -> (Frames, sluice_testkit::RawResponse) {
    let mut c = RawClient::connect(listen).await;
    c.send(format!(
        "GET {path} HTTP/1.1\r\nhost: a\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\
         sec-websocket-extensions: permessage-deflate; client_max_window_bits\r\n\r\n"
    ))
    .await;
    let head = c.response("GET").await.expect("an answer to the upgrade");
    let (io, buf) = c.into_parts();
    (Frames { io, buf }, head)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn extensions_are_agreed_end_to_end_and_a_compressed_session_gets_close_1001() {
    let view = Arc::new(Mutex::new(BackendView::default()));
    let b = ws_backend(view.clone()).await;
    let (node, listen) = node_over(&[b.addr()], "60s", "1s").await;
    let (mut client, head) = upgrade(&listen, "/").await;
    assert_eq!(head.status, 101);
    assert_eq!(
        head.header("sec-websocket-extensions"),
        Some("permessage-deflate"),
        "the backend's agreement reaches the client"
    );
    assert_eq!(
        view.lock().unwrap().offer.as_deref(),
        Some("permessage-deflate; client_max_window_bits"),
        "the client's offer reaches the backend"
    );

    // Compressed frames (RSV1) pass both ways untouched.
    let first = client.next().await.unwrap();
    assert_eq!((first.first, first.masked), (0xC1, false));
    client.send(0xC1, b"\x2a\xc9\x2f\x4a\x01\x00", true).await;
    let echo = client.next().await.unwrap();
    assert_eq!(
        (echo.first, &echo.payload[..]),
        (0xC1, &b"\x2a\xc9\x2f\x4a\x01\x00"[..])
    );

    // The drain deadline: each side gets Close 1001, an uncompressed
    // control frame (RFC 7692 §6: RSV1 clear), the backend's masked.
    let removed = Instant::now();
    cli_ok(&node, &["backend", "remove", "web", b.addr()]).await;
    let close = client.next().await.expect("a Close before the end");
    let after = removed.elapsed();
    assert_eq!((close.first, close_code(&close)), (0x88, 1001));
    assert!(
        after >= Duration::from_millis(800) && after < Duration::from_millis(2000),
        "Close 1001 came {after:?} after the removal of a 1 s drain"
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while !view
        .lock()
        .unwrap()
        .frames
        .iter()
        .any(|f| f.first & 0x0f == 0x8)
    {
        assert!(Instant::now() < deadline, "the backend got no Close");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let view = view.lock().unwrap();
    let backend_close = view.frames.iter().find(|f| f.first & 0x0f == 0x8).unwrap();
    assert_eq!(
        (
            backend_close.first,
            backend_close.masked,
            close_code(backend_close)
        ),
        (0x88, true, 1001)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_that_dies_without_close_is_an_abrupt_close_for_the_client() {
    let b = ws_backend(Arc::new(Mutex::new(BackendView::default()))).await;
    let (_node, listen) = node_over(&[b.addr()], "60s", "1s").await;
    let (mut client, head) = upgrade(&listen, "/crash").await;
    assert_eq!(head.status, 101);
    let last = client.next().await.expect("the last message");
    assert_eq!((last.first, &last.payload[..]), (0x81, &b"last words"[..]));
    // Then the stream ends with no Close frame: the client's library
    // reports 1006, not a clean closure.
    assert_eq!(client.next().await, None);
}

/// A client that resets its connection while its backend is still deciding
/// on the upgrade: when the `101` comes, sluice has no one to give it to.
/// The backend's connection is closed at once, and nothing of the upgrade
/// stays counted as work on the backend: removing it ends its drain at once
/// (drain timeout 60 s).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_gone_before_its_101_leaves_nothing_open_on_the_backend() {
    let (client_gone_tx, client_gone_rx) = tokio::sync::watch::channel(false);
    let backend_saw_close = Arc::new(Mutex::new(None::<bool>));
    let saw = backend_saw_close.clone();
    let b = ScriptedBackend::start(move |mut c: BackendConn| {
        let mut client_gone = client_gone_rx.clone();
        let saw = saw.clone();
        async move {
            let Some(req) = c.read_head().await else {
                return;
            };
            if req.header("upgrade").is_none() {
                c.write("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
                    .await;
                return;
            }
            // The 101 only once the client is gone (and its reset had a
            // moment to reach sluice; had it not, the tunnel would start
            // and end at the reset, and the checks below hold the same).
            let _ = client_gone.wait_for(|gone| *gone).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
            c.write(
                "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: upgrade\r\n\
                 sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
            )
            .await;
            *saw.lock().unwrap() = Some(c.closed_within(Duration::from_secs(3)).await);
        }
    })
    .await;
    let (node, listen) = node_over(&[b.addr()], "60s", "60s").await;
    let mut c = RawClient::connect(&listen).await;
    c.send(
        "GET /chat HTTP/1.1\r\nhost: a\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\
         sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n",
    )
    .await;
    poll(
        Duration::from_secs(5),
        "the upgrade request at the backend",
        || async {
            (b.connections() > 0)
                .then_some(())
                .ok_or_else(|| "no connection yet".to_string())
        },
    )
    .await;
    let (io, _) = c.into_parts();
    io.set_zero_linger().unwrap();
    drop(io);
    client_gone_tx.send(true).unwrap();
    let closed = poll(Duration::from_secs(5), "the backend's verdict", || async {
        backend_saw_close
            .lock()
            .unwrap()
            .ok_or_else(|| "no 101 written yet".to_string())
    })
    .await;
    assert!(closed, "the backend's side of the upgrade stayed open");
    // The node goes on serving, and the backend holds no work of it.
    let resp = http_client()
        .get(format!("http://{listen}/"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    remove(&node, b.addr()).await;
    assert!(
        wait_removed(&node, b.addr(), Duration::from_secs(5)).await,
        "the drain waited for an upgrade whose client was gone"
    );
}
