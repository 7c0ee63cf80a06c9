//! Property tests of the chunked body decoder (RFC 9112 §7.1): any valid
//! encoding, read in any pieces, decodes to its payload; bad input is refused.

use bytes::BytesMut;
use proptest::collection::vec;
use proptest::prelude::*;

use super::{decode, ChunkError, Chunked, Decoded, MAX_LINE};

const TCHARS: &[u8] =
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

// === what a run of the decoder gave ===

#[derive(Debug)]
enum Outcome {
    /// `End`: the payload, the bytes fed (`asked_at` before the last
    /// read), and what was left in the buffer.
    End {
        payload: Vec<u8>,
        asked_at: usize,
        fed: usize,
        left: Vec<u8>,
    },
    Err(ChunkError),
    /// The decoder wanted more after the whole stream was fed.
    Starved,
}

/// Feeds `stream` to a fresh decoder in reads of the sizes in `reads`
/// (cycled), each time it asks for more, until `End`, an error or the end
/// of the stream. Checks on the way that data is never empty and that the
/// decoder makes progress (a bounded number of calls).
fn drive(stream: &[u8], reads: &[usize]) -> Outcome {
    let mut state = Chunked::Size;
    let mut buf = BytesMut::new();
    let mut payload = Vec::new();
    let mut fed = 0;
    let mut asked_at = 0;
    let mut sizes = reads.iter().copied().map(|n| n.max(1)).cycle();
    // Each call either consumes a byte (data), asks for at least one more
    // byte, or ends the run.
    let bound = 2 * stream.len() + 4;
    for _ in 0..bound {
        match decode(&mut state, &mut buf) {
            Ok(Decoded::Data(d)) => {
                assert!(!d.is_empty(), "empty data");
                payload.extend_from_slice(&d);
            }
            Ok(Decoded::End) => {
                return Outcome::End {
                    payload,
                    asked_at,
                    fed,
                    left: buf.to_vec(),
                }
            }
            Ok(Decoded::NeedMore) => {
                if fed == stream.len() {
                    return Outcome::Starved;
                }
                asked_at = fed;
                let end = (fed + sizes.next().unwrap_or(1)).min(stream.len());
                buf.extend_from_slice(&stream[fed..end]);
                fed = end;
            }
            Err(e) => return Outcome::Err(e),
        }
    }
    panic!("no end after {bound} calls");
}

// === valid encodings ===

/// Optional whitespace (`BWS`).
fn bws() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["", "", " ", "\t", " \t "][..])
}

fn token() -> impl Strategy<Value = Vec<u8>> {
    vec(prop::sample::select(TCHARS), 1..10)
}

/// A quoted-string: qdtext (obs-text included) and quoted-pairs.
fn quoted_string() -> impl Strategy<Value = Vec<u8>> {
    let qdtext = prop_oneof![
        Just(b'\t'),
        Just(b' '),
        Just(0x21),
        0x23u8..=0x5B,
        0x5Du8..=0x7E,
        0x80u8..=0xFF,
    ]
    .prop_map(|b| vec![b]);
    let pair = prop_oneof![Just(b'\t'), Just(b' '), 0x21u8..=0x7E, 0x80u8..=0xFF]
        .prop_map(|b| vec![b'\\', b]);
    vec(prop_oneof![4 => qdtext, 1 => pair], 0..12).prop_map(|parts| {
        let mut s = vec![b'"'];
        s.extend(parts.concat());
        s.push(b'"');
        s
    })
}

/// Chunk extensions: `*( BWS ";" BWS name [ BWS "=" BWS value ] )`.
fn extensions() -> impl Strategy<Value = Vec<u8>> {
    let value = prop_oneof![
        Just(None),
        token().prop_map(Some),
        quoted_string().prop_map(Some)
    ];
    let ext = (bws(), bws(), token(), bws(), bws(), value).prop_map(
        |(before, after, name, eq_before, eq_after, value)| {
            let mut e = Vec::new();
            e.extend_from_slice(before.as_bytes());
            e.push(b';');
            e.extend_from_slice(after.as_bytes());
            e.extend_from_slice(&name);
            if let Some(v) = value {
                e.extend_from_slice(eq_before.as_bytes());
                e.push(b'=');
                e.extend_from_slice(eq_after.as_bytes());
                e.extend_from_slice(&v);
            }
            e
        },
    );
    prop_oneof![
        2 => Just(Vec::new()),
        1 => vec(ext, 1..4).prop_map(|e| e.concat()),
    ]
}

/// A chunk-size line for `size`: hex in either case, leading zeros (the
/// decoder takes up to 16 digits), extensions.
fn size_line(size: u64) -> impl Strategy<Value = Vec<u8>> {
    (any::<bool>(), 0usize..16, extensions()).prop_map(move |(upper, zeros, ext)| {
        let hex = if upper {
            format!("{size:X}")
        } else {
            format!("{size:x}")
        };
        let zeros = zeros.min(16 - hex.len());
        let mut line = "0".repeat(zeros).into_bytes();
        line.extend_from_slice(hex.as_bytes());
        line.extend_from_slice(&ext);
        line.extend_from_slice(b"\r\n");
        line
    })
}

/// One trailer field line.
fn trailer_field() -> impl Strategy<Value = Vec<u8>> {
    let value = vec(prop_oneof![Just(b' '), Just(b'\t'), 0x21u8..=0x7E], 0..60);
    (token(), bws(), value).prop_map(|(name, ows, value)| {
        let mut f = name;
        f.push(b':');
        f.extend_from_slice(ows.as_bytes());
        f.extend_from_slice(&value);
        f.extend_from_slice(b"\r\n");
        f
    })
}

/// A chunked body: its chunks' payloads and its encoding.
#[derive(Debug, Clone)]
struct Body {
    payloads: Vec<Vec<u8>>,
    encoded: Vec<u8>,
}

impl Body {
    fn payload(&self) -> Vec<u8> {
        self.payloads.concat()
    }
}

fn chunk() -> impl Strategy<Value = (Vec<u8>, Vec<u8>)> {
    vec(any::<u8>(), 1..300)
        .prop_flat_map(|data| (size_line(data.len() as u64), Just(data)))
        .prop_map(|(line, data)| {
            let mut c = line;
            c.extend_from_slice(&data);
            c.extend_from_slice(b"\r\n");
            (data, c)
        })
}

fn body() -> impl Strategy<Value = Body> {
    (
        vec(chunk(), 0..20),
        size_line(0),
        vec(trailer_field(), 0..4),
    )
        .prop_map(|(chunks, last, trailers)| {
            let mut encoded = Vec::new();
            let mut payloads = Vec::new();
            for (data, c) in chunks {
                payloads.push(data);
                encoded.extend_from_slice(&c);
            }
            encoded.extend_from_slice(&last);
            encoded.extend_from_slice(&trailers.concat());
            encoded.extend_from_slice(b"\r\n");
            Body { payloads, encoded }
        })
}

/// Read sizes: byte by byte, small, or up to a socket read's size.
fn reads() -> impl Strategy<Value = Vec<usize>> {
    prop_oneof![
        Just(vec![1]),
        vec(1usize..8, 1..8),
        vec(1usize..10_000, 1..8),
    ]
}

fn hex_digits() -> impl Strategy<Value = Vec<u8>> {
    vec(prop::sample::select(&b"0123456789abcdefABCDEF"[..]), 1..8)
}

proptest! {
    #[test]
    fn any_valid_encoding_decodes_to_its_payload_whatever_the_reads(
        body in body(),
        after in vec(any::<u8>(), 0..64),
        reads in reads(),
    ) {
        let stream = [&body.encoded[..], &after[..]].concat();
        match drive(&stream, &reads) {
            Outcome::End { payload, asked_at, fed, left } => {
                prop_assert_eq!(payload, body.payload());
                // No read asked for once the whole body was buffered.
                prop_assert!(asked_at < body.encoded.len());
                // Exactly the encoding consumed; what follows stays.
                prop_assert_eq!(fed - left.len(), body.encoded.len());
                prop_assert_eq!(&left[..], &stream[body.encoded.len()..fed]);
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn no_more_bytes_are_asked_for_once_the_body_is_buffered(body in body()) {
        // Fed whole at once: one read, no `NeedMore` after it.
        match drive(&body.encoded, &[body.encoded.len()]) {
            Outcome::End { payload, left, .. } => {
                prop_assert_eq!(payload, body.payload());
                prop_assert!(left.is_empty());
            }
            other => prop_assert!(false, "{:?}", other),
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..600),
            // Mostly well-formed lines, to get past the size line.
            vec(
                prop_oneof![
                    hex_digits(),
                    Just(b"\r\n".to_vec()),
                    Just(b";".to_vec()),
                    vec(any::<u8>(), 0..6),
                ],
                0..40,
            )
            .prop_map(|parts| parts.concat()),
        ],
        reads in reads(),
    ) {
        // `drive` bounds the calls and checks each answer.
        let _ = drive(&bytes, &reads);
    }

    #[test]
    fn a_size_with_a_non_hex_character_is_refused(
        before in body(),
        digits in hex_digits(),
        bad in any::<u8>().prop_filter("not hex, not whitespace, not `;`", |b| {
            !b.is_ascii_hexdigit() && !b.is_ascii_whitespace() && *b != b';'
        }),
        at in any::<prop::sample::Index>(),
        reads in reads(),
    ) {
        let at = at.index(digits.len() + 1);
        // Narrowed: `u64::from_str_radix` takes a leading `+`, so `+5` is
        // read as 5 (not a valid chunk-size).
        prop_assume!(!(bad == b'+' && at == 0));
        let mut size = digits.clone();
        size.insert(at, bad);
        // The chunks before it, without their last-chunk.
        let mut stream = chunks_only(&before);
        stream.extend_from_slice(&size);
        stream.extend_from_slice(b"\r\nxx\r\n0\r\n\r\n");
        refused(drive(&stream, &reads))?;
    }

    #[test]
    fn an_empty_or_overflowing_size_is_refused(
        before in body(),
        ext in extensions(),
        overflow in proptest::option::of(vec(prop::sample::select(&b"123456789abcdef"[..]), 17..20)),
        reads in reads(),
    ) {
        let mut stream = chunks_only(&before);
        stream.extend_from_slice(&overflow.unwrap_or_default());
        stream.extend_from_slice(&ext);
        stream.extend_from_slice(b"\r\nxx\r\n0\r\n\r\n");
        refused(drive(&stream, &reads))?;
    }

    #[test]
    fn data_not_followed_by_crlf_is_refused(
        before in body(),
        data in vec(any::<u8>(), 1..300),
        not_crlf in prop_oneof![
            (any::<u8>(), any::<u8>()),
            (Just(b'\r'), any::<u8>()),
            (any::<u8>(), Just(b'\n')),
        ]
        .prop_filter("not CRLF", |p| *p != (b'\r', b'\n')),
        reads in reads(),
    ) {
        // A decoder that skipped the two bytes unchecked would end well.
        let mut stream = chunks_only(&before);
        stream.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        stream.extend_from_slice(&data);
        stream.extend_from_slice(&[not_crlf.0, not_crlf.1]);
        stream.extend_from_slice(b"0\r\n\r\n");
        refused(drive(&stream, &reads))?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn a_size_or_trailer_line_longer_than_the_limit_is_refused(
        before in body(),
        in_trailers in any::<bool>(),
        len in (MAX_LINE + 1)..(MAX_LINE + 512),
        // Not byte by byte: each read scans the whole line again.
        reads in vec(64usize..10_000, 1..8),
    ) {
        // The line's CRLF never comes. (A longer line whose CRLF comes in
        // the same read is taken whole: the limit bounds the buffer.)
        let mut stream = chunks_only(&before);
        if in_trailers {
            stream.extend_from_slice(b"0\r\nx-long: ");
        } else {
            stream.extend_from_slice(b"5;x=");
        }
        let start = stream.len();
        stream.resize(start + len, b'a');
        refused(drive(&stream, &reads))?;
    }
}

fn refused(outcome: Outcome) -> Result<(), TestCaseError> {
    match outcome {
        Outcome::Err(ChunkError { .. }) => Ok(()),
        other => Err(TestCaseError::fail(format!("not refused: {other:?}"))),
    }
}

/// The encoding of `body` up to (not including) its last-chunk.
fn chunks_only(body: &Body) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = &body.encoded[..];
    for p in &body.payloads {
        let line = rest.windows(2).position(|w| w == b"\r\n").unwrap() + 2;
        let len = line + p.len() + 2;
        out.extend_from_slice(&rest[..len]);
        rest = &rest[len..];
    }
    out
}
