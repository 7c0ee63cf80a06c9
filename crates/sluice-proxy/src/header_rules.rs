//! Header rules shared by the client side ([`crate::http1`]), the
//! forwarding of a request (`forward.rs`) and the upstream side
//! ([`crate::upstream`]): which headers are hop-by-hop (RFC 9110 §7.6.1),
//! how a `Connection` header's tokens read, the longest request target, and
//! how the `X-Forwarded-*` headers are written.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

/// Headers that describe one hop and never travel further (RFC 9110 §7.6.1),
/// beside those the `Connection` header names.
pub(crate) static HOP_BY_HOP: [HeaderName; 6] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TE,
    header::TRAILER,
    header::TRANSFER_ENCODING,
];

/// One token of a `Connection` header.
pub(crate) enum ConnectionToken {
    Close,
    KeepAlive,
    Upgrade,
    /// Another header's name: that header is hop-by-hop too.
    Listed(HeaderName),
}

/// The tokens of one `Connection` header value; empty tokens and ones that
/// are no header name are skipped.
pub(crate) fn connection_tokens(value: &[u8]) -> impl Iterator<Item = ConnectionToken> + '_ {
    value.split(|b| *b == b',').filter_map(|t| {
        let t = t.trim_ascii();
        Some(if t.eq_ignore_ascii_case(b"close") {
            ConnectionToken::Close
        } else if t.eq_ignore_ascii_case(b"keep-alive") {
            ConnectionToken::KeepAlive
        } else if t.eq_ignore_ascii_case(b"upgrade") {
            ConnectionToken::Upgrade
        } else {
            ConnectionToken::Listed(HeaderName::from_bytes(t).ok()?)
        })
    })
}

/// Removes a request's hop-by-hop headers (the response side leaves them
/// out as it parses: `upstream::exchange`).
pub(crate) fn strip_hop_by_hop(h: &mut HeaderMap) {
    // One pass over the names finds which are here (most requests carry
    // none), so only those are hashed and removed.
    let mut present = [false; 6];
    let mut upgrade = false;
    for name in h.keys() {
        if *name == header::UPGRADE {
            upgrade = true;
        } else if let Some(i) = HOP_BY_HOP.iter().position(|hop| name == hop) {
            present[i] = true;
        }
    }
    if present[0] {
        let listed: Vec<HeaderName> = h
            .get_all(header::CONNECTION)
            .iter()
            .flat_map(|v| connection_tokens(v.as_bytes()))
            .filter_map(|t| match t {
                ConnectionToken::Listed(name) => Some(name),
                _ => None,
            })
            .collect();
        for name in listed {
            // The option list never removes Host or the framing headers.
            if name != header::HOST && name != header::CONTENT_LENGTH {
                h.remove(name);
            }
        }
    }
    for (name, here) in HOP_BY_HOP.iter().zip(present) {
        if here {
            h.remove(name);
        }
    }
    if upgrade {
        h.remove(header::UPGRADE);
    }
}

/// Longest request target accepted (the request line's path and query);
/// longer ones get `414`. nginx's default request-line buffer is as long.
pub(crate) const MAX_TARGET: usize = 8 * 1024;

/// Where a request came from, as the `X-Forwarded-*` headers tell it.
#[derive(Debug, Clone)]
pub(crate) struct ClientOrigin {
    /// The client's IP address.
    pub ip: HeaderValue,
    /// Whether it came over TLS (`X-Forwarded-Proto: https`).
    pub https: bool,
}

/// Writes `h` as HTTP/1.1 header lines for the backend, with the
/// `X-Forwarded-*` headers: `For` extended by the client's IP (every
/// earlier value kept, in order), `Proto` (`http` or `https`, how the
/// client reached sluice) and `Host` set (the client's replaced).
/// Writing them here, not inserting them into the map, saves three map
/// insertions per request.
pub(crate) fn write_forwarded_headers(h: &HeaderMap, client: &ClientOrigin, out: &mut Vec<u8>) {
    let client_ip = &client.ip;
    static XFF: HeaderName = HeaderName::from_static("x-forwarded-for");
    static XFP: HeaderName = HeaderName::from_static("x-forwarded-proto");
    static XFH: HeaderName = HeaderName::from_static("x-forwarded-host");
    let mut xff_written = false;
    for (name, value) in h {
        if *name == XFP || *name == XFH {
            continue;
        }
        if *name == XFF {
            if !xff_written {
                out.extend_from_slice(b"x-forwarded-for: ");
                for (i, prev) in h.get_all(&XFF).iter().enumerate() {
                    if i > 0 {
                        out.extend_from_slice(b", ");
                    }
                    out.extend_from_slice(prev.as_bytes());
                }
                out.extend_from_slice(b", ");
                out.extend_from_slice(client_ip.as_bytes());
                out.extend_from_slice(b"\r\n");
                xff_written = true;
            }
            continue;
        }
        header_line(out, name.as_str().as_bytes(), value.as_bytes());
    }
    if !xff_written {
        header_line(out, b"x-forwarded-for", client_ip.as_bytes());
    }
    let proto: &[u8] = if client.https { b"https" } else { b"http" };
    header_line(out, b"x-forwarded-proto", proto);
    if let Some(host) = h.get(header::HOST) {
        header_line(out, b"x-forwarded-host", host.as_bytes());
    }
}

fn header_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hop_by_hop_headers_are_removed_with_those_connection_names() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-trace"),
        );
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-trace", HeaderValue::from_static("1"));
        h.insert(header::TE, HeaderValue::from_static("trailers"));
        h.insert(header::UPGRADE, HeaderValue::from_static("h2c"));
        h.insert("x-keep", HeaderValue::from_static("yes"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1, "{h:?}");
        assert!(h.contains_key("x-keep"));
    }

    #[test]
    fn forwarded_headers_extend_for_and_replace_proto_and_host() {
        let mut h = HeaderMap::new();
        h.append("x-forwarded-for", HeaderValue::from_static("10.1.1.1"));
        h.append("x-forwarded-for", HeaderValue::from_static("10.2.2.2"));
        h.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        h.insert(header::HOST, HeaderValue::from_static("shop.example"));
        let mut out = Vec::new();
        let plain = |ip| ClientOrigin {
            ip: HeaderValue::from_static(ip),
            https: false,
        };
        write_forwarded_headers(&h, &plain("127.0.0.9"), &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "x-forwarded-for: 10.1.1.1, 10.2.2.2, 127.0.0.9\r\nhost: shop.example\r\n\
             x-forwarded-proto: http\r\nx-forwarded-host: shop.example\r\n"
        );
        let mut out = Vec::new();
        write_forwarded_headers(&HeaderMap::new(), &plain("::1"), &mut out);
        assert_eq!(out, b"x-forwarded-for: ::1\r\nx-forwarded-proto: http\r\n");
        // Over TLS the client's own claim is replaced by https.
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-proto", HeaderValue::from_static("http"));
        let mut out = Vec::new();
        let tls = ClientOrigin {
            ip: HeaderValue::from_static("::1"),
            https: true,
        };
        write_forwarded_headers(&h, &tls, &mut out);
        assert_eq!(out, b"x-forwarded-for: ::1\r\nx-forwarded-proto: https\r\n");
    }
}
