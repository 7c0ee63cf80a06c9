//! One access-log line: the fields of a request or tunnel that ended
//! ([`AccessLine`]) written as a flat JSON object or as one `key=value`
//! text line, each ending in a newline.
//!
//! Both carry the same keys in the same order. JSON writes a missing value
//! as `null`, text as `-`. Strings are escaped (JSON) or, in text, quoted
//! the JSON way when they hold a space, a quote, `=`, a backslash or
//! anything outside printable ASCII, so a line can never be split or
//! forged by what a client sent.

use std::cell::Cell;
use std::io::Write;
use std::net::SocketAddr;

use sluice_model::{NodeId, UnixMillis};

use crate::drain_mark::DrainSeen;
use crate::error::DrainCause;

/// Access-log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccessLogFormat {
    /// One flat JSON object per line, with `level` and `target`
    /// (`sluice::access`) as the node's JSON log lines have them.
    Json,
    /// `<time> ACCESS node=<id> key=value …`, laid out like the node's
    /// text log lines.
    Text,
}

/// What one request or tunnel did, as its line says it.
#[derive(Debug, Clone)]
pub(crate) struct AccessLine<'a> {
    /// When it ended (Unix ms).
    pub time: UnixMillis,
    pub tunnel: bool,
    pub listener: u16,
    pub client: SocketAddr,
    pub method: &'a str,
    pub path: &'a str,
    pub version: &'static str,
    pub status: u16,
    pub bytes_in: u64,
    pub bytes_out: u64,
    pub duration_micros: u64,
    /// The backend chosen: group and address.
    pub backend: Option<(&'a str, &'a str)>,
    /// `x-sluice-error` of sluice's own answer.
    pub error: Option<&'static str>,
    /// The drain it ended under, and whether its deadline closed it.
    pub drain: Option<(DrainSeen, bool)>,
    /// Close code sent to the client (tunnels), when known.
    pub close_code: Option<u16>,
}

/// A value of a line.
enum Value<'a> {
    Str(&'a str),
    Num(u64),
    Millis(u64),
    Time(UnixMillis),
    /// A drain id, written `d<n>` as the CLI and the logs show it.
    Drain(u64),
    Bool(bool),
    Null,
}

impl AccessLine<'_> {
    /// Appends the line, as node `node` writes it, newline included, to
    /// `out`.
    pub fn write(&self, node: NodeId, format: AccessLogFormat, out: &mut Vec<u8>) {
        let drain_of = |d: &DrainSeen| match d.cause {
            DrainCause::Backend => "backend",
            DrainCause::Listener => "listener",
            DrainCause::Node => "node",
        };
        let opt_str = |v: Option<&'static str>| v.map_or(Value::Null, Value::Str);
        let mut client = [0u8; 64];
        let client = display_into(&self.client, &mut client);
        let fields: [(&str, Value<'_>); 18] = [
            (
                "kind",
                Value::Str(if self.tunnel { "tunnel" } else { "request" }),
            ),
            ("listener", Value::Num(u64::from(self.listener))),
            ("client", Value::Str(client)),
            ("method", Value::Str(self.method)),
            ("path", Value::Str(self.path)),
            ("version", Value::Str(self.version)),
            ("status", Value::Num(u64::from(self.status))),
            ("bytes_in", Value::Num(self.bytes_in)),
            ("bytes_out", Value::Num(self.bytes_out)),
            ("duration_ms", Value::Millis(self.duration_micros)),
            (
                "group",
                self.backend.map_or(Value::Null, |b| Value::Str(b.0)),
            ),
            (
                "backend",
                self.backend.map_or(Value::Null, |b| Value::Str(b.1)),
            ),
            ("error", opt_str(self.error)),
            (
                "drain",
                match self.drain {
                    Some((DrainSeen { id: Some(id), .. }, _)) => Value::Drain(id.0),
                    _ => Value::Null,
                },
            ),
            (
                "drain_of",
                opt_str(self.drain.as_ref().map(|(d, _)| drain_of(d))),
            ),
            (
                "drain_deadline",
                self.drain
                    .map_or(Value::Null, |(d, _)| Value::Time(d.deadline)),
            ),
            (
                "closed_at_deadline",
                self.drain.map_or(Value::Null, |(_, cut)| Value::Bool(cut)),
            ),
            (
                "close_code",
                self.close_code
                    .map_or(Value::Null, |c| Value::Num(u64::from(c))),
            ),
        ];
        // A tunnel's line ends with its close code; a request's has none.
        let fields = if self.tunnel {
            &fields[..]
        } else {
            &fields[..17]
        };
        match format {
            AccessLogFormat::Json => {
                out.extend_from_slice(b"{\"time\":\"");
                write_time(out, self.time);
                out.extend_from_slice(b"\",\"level\":\"INFO\",\"node\":");
                push_num(out, node);
                out.extend_from_slice(b",\"target\":\"sluice::access\"");
                for (key, value) in fields {
                    out.extend_from_slice(b",\"");
                    out.extend_from_slice(key.as_bytes());
                    out.extend_from_slice(b"\":");
                    write_json_value(out, value);
                }
                out.extend_from_slice(b"}\n");
            }
            AccessLogFormat::Text => {
                write_time(out, self.time);
                out.extend_from_slice(b" ACCESS node=");
                push_num(out, node);
                for (key, value) in fields {
                    out.push(b' ');
                    out.extend_from_slice(key.as_bytes());
                    out.push(b'=');
                    write_text_value(out, value);
                }
                out.push(b'\n');
            }
        }
    }
}

/// `addr` as text in `buf` (a socket address always fits 64 bytes); an
/// IPv4 one without the formatting machinery, it is most of them.
fn display_into<'b>(addr: &SocketAddr, buf: &'b mut [u8; 64]) -> &'b str {
    let len = match addr {
        SocketAddr::V4(v4) => {
            let mut scratch = [0u8; 24];
            let mut at = 0;
            for (i, octet) in v4.ip().octets().iter().enumerate() {
                if i > 0 {
                    scratch[at] = b'.';
                    at += 1;
                }
                at += digits(u64::from(*octet), &mut scratch[at..]);
            }
            scratch[at] = b':';
            at += 1;
            at += digits(u64::from(v4.port()), &mut scratch[at..]);
            buf[..at].copy_from_slice(&scratch[..at]);
            at
        }
        SocketAddr::V6(_) => {
            let mut out = Vec::new();
            let _ = write!(out, "{addr}");
            let n = out.len().min(buf.len());
            buf[..n].copy_from_slice(&out[..n]);
            n
        }
    };
    std::str::from_utf8(&buf[..len]).unwrap_or("-")
}

/// Writes `n` in decimal at the start of `to` (which has room for it);
/// returns how many bytes.
fn digits(mut n: u64, to: &mut [u8]) -> usize {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let len = tmp.len() - i;
    to[..len].copy_from_slice(&tmp[i..]);
    len
}

/// Appends `n` in decimal.
fn push_num(out: &mut Vec<u8>, n: u64) {
    let mut tmp = [0u8; 20];
    let len = digits(n, &mut tmp);
    out.extend_from_slice(&tmp[..len]);
}

fn write_json_value(out: &mut Vec<u8>, value: &Value<'_>) {
    match value {
        Value::Str(s) => write_json_string(out, s),
        Value::Num(n) => push_num(out, *n),
        Value::Millis(micros) => {
            push_num(out, micros / 1000);
            let frac = micros % 1000;
            out.extend_from_slice(&[
                b'.',
                b'0' + (frac / 100) as u8,
                b'0' + (frac / 10 % 10) as u8,
                b'0' + (frac % 10) as u8,
            ]);
        }
        Value::Time(ms) => {
            out.push(b'"');
            write_time(out, *ms);
            out.push(b'"');
        }
        Value::Drain(id) => {
            out.extend_from_slice(b"\"d");
            push_num(out, *id);
            out.push(b'"');
        }
        Value::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Value::Null => out.extend_from_slice(b"null"),
    }
}

fn write_text_value(out: &mut Vec<u8>, value: &Value<'_>) {
    match value {
        Value::Str(s) if needs_quotes(s) => write_json_string(out, s),
        Value::Str(s) => out.extend_from_slice(s.as_bytes()),
        Value::Time(ms) => write_time(out, *ms),
        Value::Drain(id) => {
            out.push(b'd');
            push_num(out, *id);
        }
        Value::Null => out.push(b'-'),
        other => write_json_value(out, other),
    }
}

/// Whether a text value must be quoted to stay one token of one line.
fn needs_quotes(s: &str) -> bool {
    s.is_empty()
        || s == "-"
        || s.bytes()
            .any(|b| !b.is_ascii_graphic() || matches!(b, b'"' | b'=' | b'\\'))
}

/// `s` as a JSON string: quotes, backslashes and control characters
/// escaped (DEL too, so a terminal shows it).
pub(crate) fn write_json_string(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    let mut plain = 0;
    let bytes = s.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        let escape: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0..=0x1f | 0x7f => b"",
            _ => continue,
        };
        out.extend_from_slice(&bytes[plain..i]);
        if escape.is_empty() {
            let _ = write!(out, "\\u{b:04x}");
        } else {
            out.extend_from_slice(escape);
        }
        plain = i + 1;
    }
    out.extend_from_slice(&bytes[plain..]);
    out.push(b'"');
}

thread_local! {
    /// The last second written and its `YYYY-MM-DDTHH:MM:SS` (most lines
    /// of a thread fall in the same second as the one before).
    static SECOND: Cell<(u64, [u8; 19])> = const { Cell::new((u64::MAX, [0; 19])) };
}

/// `ms` (Unix milliseconds) as RFC 3339 UTC with milliseconds:
/// `2025-01-31T12:00:00.123Z`.
pub(crate) fn write_time(out: &mut Vec<u8>, ms: UnixMillis) {
    let secs = ms / 1000;
    let (cached, mut text) = SECOND.get();
    if cached != secs {
        let mut formatted = Vec::with_capacity(19);
        write_second(&mut formatted, secs);
        text.copy_from_slice(&formatted[..19]);
        SECOND.set((secs, text));
    }
    out.extend_from_slice(&text);
    let frac = ms % 1000;
    out.extend_from_slice(&[
        b'.',
        b'0' + (frac / 100) as u8,
        b'0' + (frac / 10 % 10) as u8,
        b'0' + (frac % 10) as u8,
        b'Z',
    ]);
}

/// `secs` (Unix seconds) as `YYYY-MM-DDTHH:MM:SS` (19 bytes up to year
/// 9999).
fn write_second(out: &mut Vec<u8>, secs: u64) {
    let (days, in_day) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    let _ = write!(
        out,
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        in_day / 3600,
        in_day / 60 % 60,
        in_day % 60,
    );
}

/// The proleptic Gregorian date of day `days` since 1970-01-01 (days
/// counted in 400-year eras of 146,097 days, years starting in March so
/// that the leap day ends a year).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use sluice_model::DrainId;

    use super::*;

    fn line() -> AccessLine<'static> {
        AccessLine {
            time: 1_700_000_000_123,
            tunnel: false,
            listener: 8080,
            client: "127.0.0.1:50123".parse().unwrap(),
            method: "GET",
            path: "/a/b",
            version: "HTTP/1.1",
            status: 200,
            bytes_in: 5,
            bytes_out: 17,
            duration_micros: 1_234,
            backend: Some(("web", "127.0.0.1:9000")),
            error: None,
            drain: None,
            close_code: None,
        }
    }

    fn json(l: &AccessLine<'_>) -> String {
        let mut out = Vec::new();
        l.write(3, AccessLogFormat::Json, &mut out);
        String::from_utf8(out).unwrap()
    }

    fn text(l: &AccessLine<'_>) -> String {
        let mut out = Vec::new();
        l.write(3, AccessLogFormat::Text, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_request_line_in_json() {
        assert_eq!(
            json(&line()),
            "{\"time\":\"2023-11-14T22:13:20.123Z\",\"level\":\"INFO\",\"node\":3,\
             \"target\":\"sluice::access\",\"kind\":\"request\",\
             \"listener\":8080,\"client\":\"127.0.0.1:50123\",\"method\":\"GET\",\
             \"path\":\"/a/b\",\"version\":\"HTTP/1.1\",\"status\":200,\"bytes_in\":5,\
             \"bytes_out\":17,\"duration_ms\":1.234,\"group\":\"web\",\
             \"backend\":\"127.0.0.1:9000\",\"error\":null,\"drain\":null,\
             \"drain_of\":null,\"drain_deadline\":null,\"closed_at_deadline\":null}\n"
        );
    }

    #[test]
    fn a_drained_tunnel_line_in_text() {
        let l = AccessLine {
            tunnel: true,
            status: 101,
            drain: Some((
                DrainSeen {
                    id: Some(DrainId(12)),
                    deadline: 1_700_000_001_000,
                    cause: DrainCause::Backend,
                },
                true,
            )),
            close_code: Some(1001),
            backend: None,
            error: Some("drain_deadline"),
            ..line()
        };
        assert_eq!(
            text(&l),
            "2023-11-14T22:13:20.123Z ACCESS node=3 kind=tunnel listener=8080 \
             client=127.0.0.1:50123 method=GET path=/a/b version=HTTP/1.1 status=101 \
             bytes_in=5 bytes_out=17 duration_ms=1.234 group=- backend=- \
             error=drain_deadline drain=d12 drain_of=backend \
             drain_deadline=2023-11-14T22:13:21.000Z closed_at_deadline=true close_code=1001\n"
        );
        let v: serde_json::Value = serde_json::from_str(&json(&l)).unwrap();
        assert_eq!(v["close_code"], 1001);
        assert_eq!(v["drain"], "d12");
        assert_eq!(v["drain_deadline"], "2023-11-14T22:13:21.000Z");
        assert_eq!(v["closed_at_deadline"], true);
    }

    #[test]
    fn quotes_and_control_bytes_are_escaped() {
        let l = AccessLine {
            method: "G\"E\\T",
            path: "/a b\n\"x\"=\u{1}\u{7f}é",
            ..line()
        };
        let j = json(&l);
        assert_eq!(j.lines().count(), 1, "{j}");
        let v: serde_json::Value = serde_json::from_str(&j).unwrap();
        assert_eq!(v["method"], "G\"E\\T");
        assert_eq!(v["path"], "/a b\n\"x\"=\u{1}\u{7f}é");
        assert!(j.contains(r#""path":"/a b\n\"x\"=\u0001\u007fé""#), "{j}");
        let t = text(&l);
        assert_eq!(t.lines().count(), 1, "{t}");
        assert!(t.contains(r#" method="G\"E\\T" "#), "{t}");
        assert!(t.contains(r#" path="/a b\n\"x\"=\u0001\u007fé" "#), "{t}");
        // A plain value stays bare; an empty one or a lone dash is quoted.
        let t = text(&AccessLine {
            path: "",
            method: "-",
            ..line()
        });
        assert!(t.contains(" method=\"-\" path=\"\" "), "{t}");
    }

    #[test]
    fn client_addresses_of_both_families() {
        for client in ["10.200.3.4:65535", "0.0.0.0:0", "[2001:db8::1]:8443"] {
            let l = AccessLine {
                client: client.parse().unwrap(),
                ..line()
            };
            let v: serde_json::Value = serde_json::from_str(&json(&l)).unwrap();
            assert_eq!(v["client"], client);
        }
    }

    #[test]
    fn dates_across_leap_years_and_centuries() {
        let at = |ms| {
            let mut out = Vec::new();
            write_time(&mut out, ms);
            String::from_utf8(out).unwrap()
        };
        assert_eq!(at(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(at(7), "1970-01-01T00:00:00.007Z");
        assert_eq!(at(59_990), "1970-01-01T00:00:59.990Z");
        assert_eq!(at(951_782_400_000), "2000-02-29T00:00:00.000Z");
        assert_eq!(at(1_709_251_199_999), "2024-02-29T23:59:59.999Z");
        assert_eq!(at(4_107_542_400_000), "2100-03-01T00:00:00.000Z");
    }
}
