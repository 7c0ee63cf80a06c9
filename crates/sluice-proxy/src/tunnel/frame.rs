//! Where a relayed WebSocket byte stream stands between frames (RFC 6455
//! §5.2), so a Close can be injected at a frame boundary, and the Close
//! frames sluice sends itself. Payloads are never looked at.

/// Opcode of a Close frame.
pub(crate) const OP_CLOSE: u8 = 0x8;

/// Longest frame header: 2 bytes, 8 of extended length, 4 of masking key.
const MAX_HEADER: usize = 14;

/// Follows one direction of a WebSocket stream, frame by frame: the header
/// being read (kept, it may arrive in pieces) or the payload bytes left of
/// the current frame.
#[derive(Debug, Default)]
pub(crate) struct FrameTracker {
    header: [u8; MAX_HEADER],
    /// Header bytes read so far; 0 while inside a payload or at a boundary.
    header_len: u8,
    /// Payload bytes left of the current frame.
    remaining: u64,
    /// Opcode of the current frame (valid while `remaining > 0`).
    opcode: u8,
}

/// A frame that ended within the bytes passed to [`FrameTracker::feed`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct FrameEnd {
    pub opcode: u8,
}

impl FrameTracker {
    /// Whether the bytes seen so far end exactly at a frame boundary.
    pub fn at_boundary(&self) -> bool {
        self.header_len == 0 && self.remaining == 0
    }

    /// Consumes `bytes` up to and including the end of the current frame.
    /// Returns how many were consumed and, if a frame ended there, which.
    /// Without a frame end the whole slice is consumed.
    pub fn feed(&mut self, bytes: &[u8]) -> (usize, Option<FrameEnd>) {
        let mut used = 0;
        if self.remaining == 0 {
            // In (or at the start of) a header.
            loop {
                let Some(&b) = bytes.get(used) else {
                    return (used, None);
                };
                self.header[usize::from(self.header_len)] = b;
                self.header_len += 1;
                used += 1;
                if let Some(payload) = self.header_complete() {
                    self.opcode = self.header[0] & 0x0F;
                    self.header_len = 0;
                    if payload == 0 {
                        return (
                            used,
                            Some(FrameEnd {
                                opcode: self.opcode,
                            }),
                        );
                    }
                    self.remaining = payload;
                    break;
                }
            }
        }
        let rest = &bytes[used..];
        let take = usize::try_from(self.remaining).map_or(rest.len(), |r| r.min(rest.len()));
        self.remaining -= take as u64;
        used += take;
        let end = (self.remaining == 0).then_some(FrameEnd {
            opcode: self.opcode,
        });
        (used, end)
    }

    /// The payload length once the header read so far is complete.
    fn header_complete(&self) -> Option<u64> {
        let h = &self.header[..usize::from(self.header_len)];
        if h.len() < 2 {
            return None;
        }
        let mask = if h[1] & 0x80 != 0 { 4 } else { 0 };
        let (ext, short) = match h[1] & 0x7F {
            126 => (2, None),
            127 => (8, None),
            n => (0, Some(u64::from(n))),
        };
        if h.len() < 2 + ext + mask {
            return None;
        }
        Some(short.unwrap_or_else(|| {
            h[2..2 + ext]
                .iter()
                .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
        }))
    }
}

/// A complete Close frame: with `status` (a code and a reason, cut to a
/// control frame's 123 bytes) or without a body; masked with `mask` when it
/// goes to a server.
pub(crate) fn close_frame(status: Option<(u16, &str)>, mask: Option<[u8; 4]>) -> Vec<u8> {
    let mut payload = Vec::new();
    if let Some((code, reason)) = status {
        payload.extend_from_slice(&code.to_be_bytes());
        payload.extend_from_slice(&reason.as_bytes()[..reason.len().min(123)]);
    }
    let mut f = Vec::with_capacity(2 + 4 + payload.len());
    f.push(0x80 | OP_CLOSE);
    f.push(payload.len() as u8 | if mask.is_some() { 0x80 } else { 0 });
    if let Some(key) = mask {
        f.extend_from_slice(&key);
        for (i, b) in payload.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
    }
    f.extend_from_slice(&payload);
    f
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A frame as a peer would send it.
    fn frame(fin: bool, opcode: u8, payload_len: usize, mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut f = vec![if fin { 0x80 } else { 0 } | opcode];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload_len {
            n if n < 126 => f.push(m | n as u8),
            n if n <= 0xFFFF => {
                f.push(m | 126);
                f.extend_from_slice(&(n as u16).to_be_bytes());
            }
            n => {
                f.push(m | 127);
                f.extend_from_slice(&(n as u64).to_be_bytes());
            }
        }
        if let Some(k) = mask {
            f.extend_from_slice(&k);
        }
        f.extend((0..payload_len).map(|i| (i % 251) as u8));
        f
    }

    /// Feeds `stream` cut at `cuts`; returns every frame end with the
    /// offset just after it.
    fn ends(stream: &[u8], cuts: &[usize]) -> Vec<(usize, u8)> {
        let mut t = FrameTracker::default();
        let mut out = Vec::new();
        let mut bounds = cuts.to_vec();
        bounds.push(stream.len());
        let mut start = 0;
        for end in bounds {
            let mut chunk = &stream[start..end];
            let mut pos = start;
            while !chunk.is_empty() {
                let (used, e) = t.feed(chunk);
                assert!(used > 0 && used <= chunk.len());
                pos += used;
                chunk = &chunk[used..];
                if let Some(e) = e {
                    assert!(t.at_boundary());
                    out.push((pos, e.opcode));
                } else {
                    assert!(chunk.is_empty(), "stopped early without a frame end");
                }
            }
            start = end;
        }
        out
    }

    fn expected(frames: &[Vec<u8>]) -> Vec<(usize, u8)> {
        let mut pos = 0;
        frames
            .iter()
            .map(|f| {
                pos += f.len();
                (pos, f[0] & 0x0F)
            })
            .collect()
    }

    #[test]
    fn lengths_of_7_16_and_64_bits_masked_or_not() {
        for len in [0, 1, 125, 126, 127, 65535, 65536, 70_000] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let frames = vec![frame(true, 0x2, len, mask), frame(true, 0x1, 3, mask)];
                let stream = frames.concat();
                assert_eq!(ends(&stream, &[]), expected(&frames), "len {len} {mask:?}");
            }
        }
    }

    #[test]
    fn a_64_bit_length_beyond_usize_is_followed() {
        let mut t = FrameTracker::default();
        let mut h = vec![0x82, 127];
        h.extend_from_slice(&u64::MAX.to_be_bytes());
        assert_eq!(t.feed(&h), (10, None));
        assert_eq!(t.feed(&[0; 100]), (100, None));
        assert!(!t.at_boundary());
        assert_eq!(t.remaining, u64::MAX - 100);
    }

    #[test]
    fn fragments_with_control_frames_between_them() {
        let m = Some([9, 8, 7, 6]);
        let frames = vec![
            frame(false, 0x1, 10, m),
            frame(true, 0x9, 4, m), // ping between fragments
            frame(false, 0x0, 200, m),
            frame(true, 0xA, 0, m), // pong, empty
            frame(true, 0x0, 5, m),
            frame(true, OP_CLOSE, 2, m),
        ];
        let stream = frames.concat();
        assert_eq!(ends(&stream, &[]), expected(&frames));
    }

    #[test]
    fn split_reads_at_every_byte_boundary() {
        let frames = vec![
            frame(true, 0x1, 5, None),
            frame(false, 0x2, 300, Some([1, 1, 1, 1])),
            frame(true, 0x0, 0, None),
            frame(true, 0x2, 65_536, None),
            frame(true, OP_CLOSE, 2, Some([5, 6, 7, 8])),
        ];
        let stream = frames.concat();
        let want = expected(&frames);
        for cut in 1..stream.len() {
            assert_eq!(ends(&stream, &[cut]), want, "cut at {cut}");
        }
        // Byte by byte.
        let cuts: Vec<usize> = (1..stream.len()).collect();
        assert_eq!(ends(&stream, &cuts), want);
    }

    #[test]
    fn boundary_only_between_frames() {
        let f = frame(true, 0x1, 3, Some([1, 2, 3, 4]));
        let mut t = FrameTracker::default();
        assert!(t.at_boundary());
        for (i, b) in f.iter().enumerate() {
            let (used, end) = t.feed(std::slice::from_ref(b));
            assert_eq!(used, 1);
            assert_eq!(end.is_some(), i == f.len() - 1);
            assert_eq!(t.at_boundary(), i == f.len() - 1, "after byte {i}");
        }
    }

    #[test]
    fn close_frames_parse_back() {
        let unmasked = close_frame(Some((1001, "going away")), None);
        assert_eq!(&unmasked[..4], &[0x88, 12, 0x03, 0xE9]);
        assert_eq!(&unmasked[4..], b"going away");
        let key = [0xA, 0xB, 0xC, 0xD];
        let masked = close_frame(Some((1001, "going away")), Some(key));
        assert_eq!(&masked[..2], &[0x88, 0x80 | 12]);
        assert_eq!(&masked[2..6], &key);
        let payload: Vec<u8> = masked[6..]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ key[i % 4])
            .collect();
        assert_eq!(&payload[..2], &1001u16.to_be_bytes());
        assert_eq!(&payload[2..], b"going away");
        for f in [unmasked, masked] {
            assert_eq!(ends(&f, &[]), vec![(f.len(), OP_CLOSE)]);
        }
        assert_eq!(
            close_frame(Some((1000, &"x".repeat(500))), None).len(),
            2 + 125
        );
        assert_eq!(close_frame(None, None), vec![0x88, 0]);
        assert_eq!(
            close_frame(None, Some(key)),
            vec![0x88, 0x80, 0xA, 0xB, 0xC, 0xD]
        );
    }
}
