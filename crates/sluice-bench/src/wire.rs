//! The client side of the two exchanges the load generators make, on a
//! plain `TcpStream` (no client library, so 10,000 held connections cost a
//! socket and a few bytes each): an HTTP/1.1 keep-alive `GET /` whose
//! answer must be `200` with a `Content-Length` body, and a WebSocket
//! upgrade (`101` with the right `Sec-WebSocket-Accept`) followed by one
//! masked text frame and its echo.

use anyhow::{anyhow, bail, Context};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The keep-alive request.
pub const GET: &[u8] = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: sluice-bench\r\n\r\n";
/// The upgrade request's key.
const WS_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
/// The text frame sent on a tunnel, and the mask it is sent with.
const WS_TEXT: &[u8] = b"hi";
const WS_MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
/// WebSocket opcodes used here.
pub const OP_TEXT: u8 = 0x1;
pub const OP_CLOSE: u8 = 0x8;
/// Largest response head accepted.
const MAX_HEAD: usize = 16 * 1024;

/// A response head: status, `Content-Length`, and the head's length.
#[derive(Debug, PartialEq, Eq)]
pub struct Head {
    pub status: u16,
    pub content_length: Option<usize>,
    pub len: usize,
}

/// Parses a response head at the start of `buf`; `Ok(None)` while the
/// blank line that ends it has not arrived.
pub fn parse_head(buf: &[u8]) -> anyhow::Result<Option<Head>> {
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > MAX_HEAD {
            bail!("response head longer than {MAX_HEAD} bytes");
        }
        return Ok(None);
    };
    let text = std::str::from_utf8(&buf[..end]).context("response head is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.split_ascii_whitespace();
    let status = match (parts.next(), parts.next()) {
        (Some(v), Some(code)) if v.starts_with("HTTP/1.") => code.parse().ok(),
        _ => None,
    }
    .ok_or_else(|| anyhow!("not an HTTP/1 status line: {status_line:?}"))?;
    let mut content_length = None;
    for line in lines {
        if let Some((name, value)) = line.split_once(':') {
            if name.trim().eq_ignore_ascii_case("content-length") {
                content_length = Some(
                    value
                        .trim()
                        .parse()
                        .with_context(|| format!("bad Content-Length {value:?}"))?,
                );
            }
        }
    }
    Ok(Some(Head {
        status,
        content_length,
        len: end + 4,
    }))
}

/// Reads one response head into `buf` (cleared first); returns it with
/// `buf` holding the head and whatever followed it.
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<Head> {
    buf.clear();
    let mut chunk = [0u8; 1024];
    loop {
        if let Some(head) = parse_head(buf)? {
            return Ok(head);
        }
        let n = stream
            .read(&mut chunk)
            .await
            .context("reading a response")?;
        if n == 0 {
            bail!("connection closed before a complete response head");
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Sends `GET /` and reads the whole answer, which must be `200` with a
/// `Content-Length` body. `buf` is scratch space, reused across calls.
pub async fn get(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    stream.write_all(GET).await.context("sending GET /")?;
    let head = read_head(stream, buf).await?;
    if head.status != 200 {
        bail!("GET / answered {}", head.status);
    }
    let body = head
        .content_length
        .ok_or_else(|| anyhow!("200 without Content-Length"))?;
    let mut have = buf.len() - head.len;
    let mut chunk = [0u8; 1024];
    while have < body {
        let n = stream.read(&mut chunk).await.context("reading a body")?;
        if n == 0 {
            bail!("connection closed {have} bytes into a {body}-byte body");
        }
        have += n;
    }
    if have > body {
        bail!("{} unexpected bytes after the body", have - body);
    }
    Ok(())
}

/// Upgrades to a WebSocket (`101` with the right accept key), sends one
/// masked text frame and reads its echo.
pub async fn ws_open(stream: &mut TcpStream, buf: &mut Vec<u8>) -> anyhow::Result<()> {
    let request = format!(
        "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {WS_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .context("sending the upgrade")?;
    let head = read_head(stream, buf).await?;
    if head.status != 101 {
        bail!("the upgrade answered {}", head.status);
    }
    let accept = derive_accept_key(WS_KEY.as_bytes());
    let text = String::from_utf8_lossy(&buf[..head.len]).to_ascii_lowercase();
    if !text.contains(&accept.to_ascii_lowercase()) {
        bail!("101 without Sec-WebSocket-Accept {accept}");
    }
    if buf.len() > head.len {
        bail!("data after the 101 before any frame was sent");
    }
    stream
        .write_all(&masked_frame(OP_TEXT, WS_TEXT, WS_MASK))
        .await
        .context("sending a text frame")?;
    let (opcode, payload) = read_frame(stream).await?;
    if opcode != OP_TEXT || payload != WS_TEXT {
        bail!("echo was opcode {opcode} {payload:?}, expected a text frame {WS_TEXT:?}");
    }
    Ok(())
}

/// A final client frame (masked, as RFC 6455 requires of clients).
pub fn masked_frame(opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    assert!(payload.len() < 126, "only short frames are sent");
    let mut frame = vec![0x80 | opcode, 0x80 | payload.len() as u8];
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    frame
}

/// The masked Close frame a client answers a server's Close with.
pub fn close_reply(code: u16) -> Vec<u8> {
    masked_frame(OP_CLOSE, &code.to_be_bytes(), WS_MASK)
}

/// Reads one unmasked server frame of at most 125 bytes: opcode, payload.
pub async fn read_frame(stream: &mut TcpStream) -> anyhow::Result<(u8, Vec<u8>)> {
    let mut header = [0u8; 2];
    stream
        .read_exact(&mut header)
        .await
        .context("reading a frame header")?;
    let (opcode, len) = frame_header(header)?;
    let mut payload = vec![0u8; len];
    stream
        .read_exact(&mut payload)
        .await
        .context("reading a frame payload")?;
    Ok((opcode, payload))
}

/// Opcode and payload length of a short, unmasked, final server frame.
pub fn frame_header(header: [u8; 2]) -> anyhow::Result<(u8, usize)> {
    if header[0] & 0x80 == 0 {
        bail!("fragmented frame {header:02x?}");
    }
    if header[1] & 0x80 != 0 {
        bail!("masked frame from the server {header:02x?}");
    }
    let len = usize::from(header[1] & 0x7f);
    if len >= 126 {
        bail!("frame longer than 125 bytes {header:02x?}");
    }
    Ok((header[0] & 0x0f, len))
}

/// The status code of a Close frame's payload (`None` when it has none).
pub fn close_code(payload: &[u8]) -> Option<u16> {
    (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heads() {
        let ok = b"HTTP/1.1 200 OK\r\nServer: x\r\ncontent-length: 2\r\n\r\nok";
        assert_eq!(
            parse_head(ok).unwrap(),
            Some(Head {
                status: 200,
                content_length: Some(2),
                len: ok.len() - 2
            })
        );
        assert_eq!(parse_head(b"HTTP/1.1 200 OK\r\nServ").unwrap(), None);
        let up = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        assert_eq!(parse_head(up).unwrap().unwrap().content_length, None);
        assert!(parse_head(b"SSH-2.0\r\n\r\n").is_err());
        assert!(parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
    }

    #[test]
    fn frames() {
        let f = masked_frame(OP_TEXT, b"hi", [1, 2, 3, 4]);
        assert_eq!(f, vec![0x81, 0x82, 1, 2, 3, 4, b'h' ^ 1, b'i' ^ 2]);
        assert_eq!(frame_header([0x88, 0x02]).unwrap(), (OP_CLOSE, 2));
        assert!(frame_header([0x08, 0x02]).is_err());
        assert!(frame_header([0x81, 0x82]).is_err());
        assert!(frame_header([0x81, 126]).is_err());
        assert_eq!(close_code(&[0x03, 0xe9, b'x']), Some(1001));
        assert_eq!(close_code(&[]), None);
        assert_eq!(close_reply(1001)[..2], [0x88, 0x82]);
    }
}
