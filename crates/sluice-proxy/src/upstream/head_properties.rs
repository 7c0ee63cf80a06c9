//! Property tests of the response head parser: any valid head is found whole
//! (never early), its end-to-end headers kept in order, its body left behind.

use bytes::BytesMut;
use http::{StatusCode, Version};
use proptest::collection::vec;
use proptest::prelude::*;

use super::body::Framing;
use super::exchange::parse_head;

const TCHARS: &[u8] =
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";

/// Names the parser reads for framing and reuse or leaves out as hop-by-hop.
const SPECIAL: [&str; 8] = [
    "content-length",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "upgrade",
];

/// A header line of the generated head.
#[derive(Debug, Clone)]
enum Field {
    /// An end-to-end header: name, value, whitespace around the value.
    EndToEnd(String, String, &'static str, &'static str),
    ContentLength(&'static str, u64),
    Chunked(&'static str),
    Connection(&'static str, bool),
}

#[derive(Debug, Clone)]
struct GenHead {
    http10: bool,
    status: u16,
    reason: Vec<u8>,
    fields: Vec<Field>,
    head_request: bool,
}

impl GenHead {
    fn encode(&self) -> Vec<u8> {
        let mut h = Vec::new();
        h.extend_from_slice(if self.http10 {
            b"HTTP/1.0 "
        } else {
            b"HTTP/1.1 "
        });
        h.extend_from_slice(self.status.to_string().as_bytes());
        h.push(b' ');
        h.extend_from_slice(&self.reason);
        h.extend_from_slice(b"\r\n");
        for f in &self.fields {
            let line = match f {
                Field::EndToEnd(name, value, before, after) => {
                    format!("{name}:{before}{value}{after}")
                }
                Field::ContentLength(name, n) => format!("{name}: {n}"),
                Field::Chunked(name) => format!("{name}: chunked"),
                Field::Connection(name, close) => {
                    format!("{name}: {}", if *close { "close" } else { "keep-alive" })
                }
            };
            h.extend_from_slice(line.as_bytes());
            h.extend_from_slice(b"\r\n");
        }
        h.extend_from_slice(b"\r\n");
        h
    }

    /// The headers the parsed head must keep: (lower-case name, value), in
    /// order.
    /// The headers the client side gets: `Content-Length` only without a
    /// `Transfer-Encoding` (RFC 9112 §6.3).
    fn end_to_end(&self) -> Vec<(String, String)> {
        let chunked = self.chunked();
        self.fields
            .iter()
            .filter_map(|f| match f {
                Field::EndToEnd(name, value, ..) => {
                    Some((name.to_ascii_lowercase(), value.clone()))
                }
                Field::ContentLength(_, n) if !chunked => {
                    Some(("content-length".into(), n.to_string()))
                }
                _ => None,
            })
            .collect()
    }

    fn content_length(&self) -> Option<u64> {
        self.fields.iter().find_map(|f| match f {
            Field::ContentLength(_, n) => Some(*n),
            _ => None,
        })
    }

    fn chunked(&self) -> bool {
        self.fields.iter().any(|f| matches!(f, Field::Chunked(_)))
    }

    fn close(&self) -> Option<bool> {
        self.fields.iter().find_map(|f| match f {
            Field::Connection(_, close) => Some(*close),
            _ => None,
        })
    }
}

fn ows() -> impl Strategy<Value = &'static str> {
    prop::sample::select(&["", "", " ", "\t", "  \t"][..])
}

/// A token name, none of the [`SPECIAL`] ones; often one of a few, so
/// names repeat (in any case).
fn name() -> impl Strategy<Value = String> {
    let common =
        prop::sample::select(&["x-a", "X-A", "x-A", "Set-Cookie", "set-cookie", "vary"][..])
            .prop_map(String::from);
    let any_token = vec(prop::sample::select(TCHARS), 1..16)
        .prop_map(|n| String::from_utf8(n).unwrap())
        .prop_filter("an end-to-end name", |n| {
            !SPECIAL.contains(&n.to_ascii_lowercase().as_str())
        });
    prop_oneof![common, any_token]
}

/// Visible ASCII, with spaces and tabs inside (not at the ends).
fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        1 => Just(String::new()),
        8 => (
            0x21u8..=0x7E,
            vec(prop_oneof![6 => 0x21u8..=0x7E, 1 => Just(b' '), 1 => Just(b'\t')], 0..30),
            0x21u8..=0x7E,
        )
            .prop_map(|(first, mid, last)| {
                let mut v = vec![first];
                if !mid.is_empty() {
                    v.extend(mid);
                    v.push(last);
                }
                String::from_utf8(v).unwrap()
            }),
    ]
}

fn spelled(names: &'static [&'static str]) -> impl Strategy<Value = &'static str> {
    prop::sample::select(names)
}

fn head() -> impl Strategy<Value = GenHead> {
    let status = (100u16..=599).prop_filter("not 101", |s| *s != 101);
    let reason = vec(
        prop_oneof![
            8 => 0x21u8..=0x7E,
            2 => Just(b' '),
            1 => Just(b'\t'),
            1 => 0x80u8..=0xFF,
        ],
        0..24,
    );
    let fields = vec(
        (name(), value(), ows(), ows()).prop_map(|(n, v, b, a)| Field::EndToEnd(n, v, b, a)),
        0..30,
    );
    let content_length = proptest::option::of((
        spelled(&["Content-Length", "content-length", "CONTENT-LENGTH"]),
        prop_oneof![0u64..100_000, any::<u64>()],
        any::<prop::sample::Index>(),
    ));
    let chunked = proptest::option::of((
        spelled(&["Transfer-Encoding", "transfer-encoding"]),
        any::<prop::sample::Index>(),
    ));
    let connection = proptest::option::of((
        spelled(&["Connection", "connection"]),
        any::<bool>(),
        any::<prop::sample::Index>(),
    ));
    (
        any::<bool>(),
        status,
        reason,
        fields,
        content_length,
        chunked,
        connection,
        prop::bool::weighted(0.1),
    )
        .prop_map(
            |(http10, status, reason, mut fields, cl, te, conn, head_request)| {
                if let Some((name, n, at)) = cl {
                    fields.insert(at.index(fields.len() + 1), Field::ContentLength(name, n));
                }
                if let Some((name, at)) = te {
                    fields.insert(at.index(fields.len() + 1), Field::Chunked(name));
                }
                if let Some((name, close, at)) = conn {
                    fields.insert(at.index(fields.len() + 1), Field::Connection(name, close));
                }
                GenHead {
                    http10,
                    status,
                    reason,
                    fields,
                    head_request,
                }
            },
        )
}

proptest! {
    #[test]
    fn no_strict_prefix_of_a_head_is_a_head(head in head()) {
        let encoded = head.encode();
        for len in 0..encoded.len() {
            let mut buf = BytesMut::from(&encoded[..len]);
            match parse_head(&mut buf, head.head_request) {
                Ok(None) => prop_assert_eq!(&buf[..], &encoded[..len], "buffer touched"),
                Ok(Some(_)) => prop_assert!(false, "a head in {} of {} bytes", len, encoded.len()),
                Err(e) => prop_assert!(false, "{} of {} bytes: {:?}", len, encoded.len(), e),
            }
        }
    }

    #[test]
    fn a_whole_head_is_parsed_and_split_off(head in head(), body in vec(any::<u8>(), 0..300)) {
        let encoded = head.encode();
        let mut buf = BytesMut::from(&[&encoded[..], &body[..]].concat()[..]);
        let parsed = match parse_head(&mut buf, head.head_request) {
            Ok(Some(parsed)) => parsed,
            other => {
                return Err(TestCaseError::fail(format!("{:?}", other.map(|h| h.is_some()))));
            }
        };
        prop_assert_eq!(&buf[..], &body[..]);
        prop_assert_eq!(parsed.status, StatusCode::from_u16(head.status).unwrap());
        let version = if head.http10 { Version::HTTP_10 } else { Version::HTTP_11 };
        prop_assert_eq!(parsed.version, version);

        // Exactly the end-to-end headers, each name's values in order.
        let want = head.end_to_end();
        prop_assert_eq!(parsed.headers.len(), want.len());
        for (name, _) in &want {
            let got: Vec<&[u8]> = parsed.headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
            let expected: Vec<&[u8]> = want
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_bytes())
                .collect();
            prop_assert_eq!(got, expected, "{}", name);
        }

        // Framing, only where the rules are settled.
        let no_body = head.head_request
            || (100..200).contains(&head.status)
            || head.status == 204
            || head.status == 304;
        match (no_body, head.content_length(), head.chunked()) {
            (true, ..) => prop_assert_eq!(parsed.framing, Framing::Empty),
            (false, Some(n), false) => prop_assert_eq!(parsed.framing, Framing::Length(n)),
            (false, None, true) if !head.http10 => {
                prop_assert_eq!(parsed.framing, Framing::Chunked)
            }
            (false, None, false) => prop_assert_eq!(parsed.framing, Framing::UntilClose),
            _ => {}
        }
        // Reuse: never after `Connection: close`, nor on HTTP/1.0 without
        // `keep-alive`.
        if head.close() == Some(true) || (head.http10 && head.close().is_none()) {
            prop_assert!(!parsed.keep_alive);
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(
        bytes in prop_oneof![
            vec(any::<u8>(), 0..600),
            vec(any::<u8>(), 0..600).prop_map(|b| [&b"HTTP/1.1 200 OK\r\n"[..], &b[..]].concat()),
        ],
        head_request in any::<bool>(),
    ) {
        check_any(&bytes, head_request)?;
    }

    #[test]
    fn a_mangled_head_never_panics(
        head in head(),
        edits in vec((any::<prop::sample::Index>(), any::<u8>(), any::<bool>()), 1..6),
    ) {
        let mut bytes = head.encode();
        for (at, b, insert) in edits {
            let at = at.index(bytes.len() + 1);
            if insert || at == bytes.len() {
                bytes.insert(at, b);
            } else {
                bytes[at] = b;
            }
        }
        check_any(&bytes, head.head_request)?;
    }
}

/// Parses `bytes`: no panic; a head found is a prefix split off, and an
/// incomplete head leaves the buffer as it was.
fn check_any(bytes: &[u8], head_request: bool) -> Result<(), TestCaseError> {
    let mut buf = BytesMut::from(bytes);
    match parse_head(&mut buf, head_request) {
        Ok(Some(_)) => prop_assert!(bytes.ends_with(&buf) && buf.len() < bytes.len()),
        Ok(None) => prop_assert_eq!(&buf[..], bytes),
        Err(_) => {}
    }
    Ok(())
}
