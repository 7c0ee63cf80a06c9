//! Chunked transfer coding (RFC 9112 §7.1), decoded as bytes arrive:
//! used for backends' response bodies and clients' request bodies alike.
//! Chunk extensions and trailers are read and dropped; sizes are strict
//! (`1*HEXDIG`, no sign, no leading space), lines end in CRLF and are at
//! most [`MAX_LINE`] bytes however they arrive.

use bytes::{Buf, Bytes, BytesMut};

/// Longest chunk-size or trailer line accepted.
pub(crate) const MAX_LINE: usize = 4096;

/// Where a chunked body's decoder stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Chunked {
    Size,
    Data(u64),
    DataEnd,
    Trailers,
}

/// The chunk-size line (lower-case hex digits, CRLF) for a chunk of `len`
/// bytes, written into `buf`.
pub(crate) fn size_line(len: usize, buf: &mut [u8; 18]) -> &[u8] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = (usize::BITS - len.leading_zeros()).div_ceil(4).max(1) as usize;
    for i in 0..digits {
        buf[digits - 1 - i] = HEX[(len >> (4 * i)) & 0xf];
    }
    buf[digits] = b'\r';
    buf[digits + 1] = b'\n';
    &buf[..digits + 2]
}

/// Why a chunked body is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ChunkError {
    pub reason: &'static str,
}

pub(crate) enum Decoded {
    Data(Bytes),
    End,
    NeedMore,
}

/// Decodes what `buf` holds of a chunked body, consuming it.
pub(crate) fn decode(state: &mut Chunked, buf: &mut BytesMut) -> Result<Decoded, ChunkError> {
    let invalid = |reason| ChunkError { reason };
    loop {
        match *state {
            Chunked::Size => {
                let Some(line) = take_line(buf)? else {
                    return Ok(Decoded::NeedMore);
                };
                let size = chunk_size(&line).ok_or(invalid("bad chunk size"))?;
                *state = if size == 0 {
                    Chunked::Trailers
                } else {
                    Chunked::Data(size)
                };
            }
            Chunked::Data(left) => {
                if buf.is_empty() {
                    return Ok(Decoded::NeedMore);
                }
                let take = left.min(buf.len() as u64);
                let data = buf.split_to(take as usize).freeze();
                *state = if take == left {
                    Chunked::DataEnd
                } else {
                    Chunked::Data(left - take)
                };
                return Ok(Decoded::Data(data));
            }
            Chunked::DataEnd => {
                if buf.len() < 2 {
                    return Ok(Decoded::NeedMore);
                }
                if &buf[..2] != b"\r\n" {
                    return Err(invalid("chunk not followed by CRLF"));
                }
                buf.advance(2);
                *state = Chunked::Size;
            }
            Chunked::Trailers => {
                let Some(line) = take_line(buf)? else {
                    return Ok(Decoded::NeedMore);
                };
                if line.is_empty() {
                    return Ok(Decoded::End);
                }
            }
        }
    }
}

/// The size of a chunk-size line (RFC 9112 §7.1: `1*HEXDIG`, then optional
/// whitespace and extensions after a `;`): no sign, no leading space, at
/// most 16 digits.
fn chunk_size(line: &[u8]) -> Option<u64> {
    let end = line
        .iter()
        .position(|b| matches!(b, b';' | b' ' | b'\t'))
        .unwrap_or(line.len());
    let (digits, rest) = line.split_at(end);
    if digits.is_empty() || digits.len() > 16 || !digits.iter().all(u8::is_ascii_hexdigit) {
        return None;
    }
    let rest = rest.trim_ascii_start();
    if !rest.is_empty() && rest[0] != b';' {
        return None;
    }
    // Bytes of a line are never a bare LF or another control character.
    if rest.iter().any(|b| *b == b'\n' || *b == b'\r') {
        return None;
    }
    digits.iter().try_fold(0u64, |n, d| {
        Some(n << 4 | u64::from((*d as char).to_digit(16)?))
    })
}

/// Takes one CRLF-terminated line off `buf` (without its CRLF); a line
/// longer than [`MAX_LINE`] is refused however its bytes arrived.
fn take_line(buf: &mut BytesMut) -> Result<Option<BytesMut>, ChunkError> {
    let too_long = ChunkError {
        reason: "chunk line too long",
    };
    match buf.iter().position(|b| *b == b'\n') {
        // A bare LF ends no line here: refused at once, not waited past.
        Some(0) => Err(ChunkError {
            reason: "bare LF in a chunk line",
        }),
        Some(lf) if buf[lf - 1] != b'\r' => Err(ChunkError {
            reason: "bare LF in a chunk line",
        }),
        Some(lf) if lf - 1 > MAX_LINE => Err(too_long),
        Some(lf) => {
            let mut line = buf.split_to(lf + 1);
            line.truncate(lf - 1);
            Ok(Some(line))
        }
        None if buf.len() > MAX_LINE => Err(too_long),
        None => Ok(None),
    }
}

#[cfg(test)]
mod properties;

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8], step: usize) -> Result<Vec<u8>, ChunkError> {
        let mut state = Chunked::Size;
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        let mut fed = 0;
        loop {
            match decode(&mut state, &mut buf)? {
                Decoded::Data(d) => out.extend_from_slice(&d),
                Decoded::End => return Ok(out),
                Decoded::NeedMore => {
                    assert!(fed < input.len(), "ran out of input");
                    let end = (fed + step).min(input.len());
                    buf.extend_from_slice(&input[fed..end]);
                    fed = end;
                }
            }
        }
    }

    #[test]
    fn size_lines_are_hex() {
        let mut buf = [0; 18];
        assert_eq!(size_line(0, &mut buf), b"0\r\n");
        assert_eq!(size_line(0x1a2b, &mut buf), b"1a2b\r\n");
        assert_eq!(size_line(usize::MAX, &mut buf), b"ffffffffffffffff\r\n");
    }

    #[test]
    fn chunked_bodies_decode_whatever_the_read_boundaries() {
        let input = b"4;ext=1\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nx-trailer: 1\r\n\r\n";
        for step in 1..=input.len() {
            assert_eq!(
                decode_all(input, step).unwrap(),
                b"Wikipedia in\r\n\r\nchunks.",
                "step {step}"
            );
        }
    }

    #[test]
    fn bad_chunks_are_refused() {
        for bad in [
            &b"zz\r\n"[..],
            b"4\r\nWikiXX",
            b"\r\n",
            b"+5\r\nhello\r\n0\r\n\r\n",
            b" 5\r\nhello\r\n0\r\n\r\n",
            b"5\n\r\nhello\r\n0\r\n\r\n",
            b"5 x\r\nhello\r\n0\r\n\r\n",
            b"5\nhello\n0\n\n",
            b"5\r\nhello\r\n0\r\nx-t: 1\n\r\n",
        ] {
            assert!(
                decode_all(bad, 64).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
