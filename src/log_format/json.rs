//! The JSON log format: one flat object per line, each key once.
//!
//! What: a line is
//! `{"time":…,"level":…,"node":…,"target":…,"message":…,"span":…,"spans":…,<fields>}`:
//! `node` is the process's node id, `span` the innermost span's name and
//! `spans` the names of the spans in scope joined with `:`, outermost first
//! (both left out outside any span, `message` when the event has none).
//! Then come the event's fields and the fields of every span in scope, at
//! the top level, with their JSON types (numbers stay numbers).
//!
//! Why: a log shipper or `jq` reads a flat object without knowing which
//! span a field came from, and a parser keeps only one value of a repeated
//! key: no field may shadow the line's own keys or another field.
//!
//! How — the key rule:
//! - a field named like one of the line's own keys (`time`, `level`,
//!   `node`, `target`, `message`, `span`, `spans`) is written as
//!   `field.<name>` (a peer's `node = 3` becomes `"field.node":3`); the
//!   event's `message` is the line's message;
//! - of fields with the same key the event's own is written, else the
//!   innermost span's: fields are written event first, then span by span
//!   from the innermost out, and a key already written is skipped.
//!
//! Each span's fields are kept typed in its extensions ([`FieldValues`]),
//! recorded when it is created and updated on `Span::record`; the layer has
//! the JSON filter, so with text logs it keeps nothing. A line is built in a
//! buffer of the thread's and written with one `write_all`.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::io::Write as _;

use serde_json::Value;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::MakeWriter;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::field_values::FieldValues;

/// The line's own keys; a field of one of these names is `field.<name>`.
const RESERVED: [&str; 7] = [
    "time", "level", "node", "target", "message", "span", "spans",
];

/// Fields a `log` record carries about its origin: `log.target` is the
/// line's target, the others are left out (as in the text format).
const LOG_TARGET: &str = "log.target";
const LOG_ORIGIN: [&str; 3] = ["log.module_path", "log.file", "log.line"];

/// The layer that writes flat JSON lines naming node `node` to `W`.
pub struct FlatJson<W> {
    node: u64,
    make_writer: W,
}

impl<W> FlatJson<W>
where
    W: for<'w> MakeWriter<'w> + 'static,
{
    pub fn new(node: u64, make_writer: W) -> Self {
        FlatJson { node, make_writer }
    }
}

/// A span's fields, in its extensions.
struct SpanFields(FieldValues);

impl<S, W> Layer<S> for FlatJson<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> MakeWriter<'w> + 'static,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut fields = FieldValues::default();
        attrs.record(&mut fields);
        span.extensions_mut().replace(SpanFields(fields));
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut extensions = span.extensions_mut();
        match extensions.get_mut::<SpanFields>() {
            Some(SpanFields(fields)) => values.record(fields),
            None => {
                let mut fields = FieldValues::default();
                values.record(&mut fields);
                extensions.replace(SpanFields(fields));
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        thread_local! {
            static LINE: RefCell<String> = const { RefCell::new(String::new()) };
        }
        LINE.with(|line| {
            // A `Debug` that logs while a line is built gets a buffer of its own.
            let mut own = String::new();
            let mut borrowed = line.try_borrow_mut();
            let buf = match borrowed.as_deref_mut() {
                Ok(buf) => buf,
                Err(_) => &mut own,
            };
            buf.clear();
            if write_line(buf, self.node, event, &ctx).is_ok() {
                buf.push('\n');
                let mut out = self.make_writer.make_writer_for(event.metadata());
                // A log line that cannot be written has nowhere to be reported.
                let _ = out.write_all(buf.as_bytes());
            }
        });
    }
}

/// Writes `event` as one JSON object (without the newline) into `out`.
fn write_line<S>(
    out: &mut String,
    node: u64,
    event: &Event<'_>,
    ctx: &Context<'_, S>,
) -> fmt::Result
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let meta = event.metadata();
    let mut fields = FieldValues::default();
    event.record(&mut fields);
    let log_target = fields.take(LOG_TARGET);
    for origin in LOG_ORIGIN {
        fields.take(origin);
    }
    let message = fields.take("message");

    out.push_str("{\"time\":\"");
    if SystemTime.format_time(&mut Writer::new(out)).is_err() {
        out.push_str("<unknown time>");
    }
    write!(
        out,
        "\",\"level\":\"{}\",\"node\":{node},\"target\":",
        meta.level()
    )?;
    match &log_target {
        Some(Value::String(target)) => write_str(out, target),
        _ => write_str(out, meta.target()),
    }
    if let Some(message) = &message {
        write!(out, ",\"message\":{message}")?;
    }
    if let Some(leaf) = ctx.event_scope(event).and_then(|mut scope| scope.next()) {
        out.push_str(",\"span\":");
        write_str(out, leaf.name());
    }
    if let Some(scope) = ctx.event_scope(event) {
        let mut names = scope.from_root();
        if let Some(root) = names.next() {
            out.push_str(",\"spans\":\"");
            write_str_content(out, root.name());
            for span in names {
                out.push(':');
                write_str_content(out, span.name());
            }
            out.push('"');
        }
    }

    let mut written = Written::default();
    for (name, value) in fields.iter() {
        write_field(out, &mut written, name, value)?;
    }
    for span in ctx.event_scope(event).into_iter().flatten() {
        let extensions = span.extensions();
        if let Some(SpanFields(fields)) = extensions.get::<SpanFields>() {
            for (name, value) in fields.iter() {
                write_field(out, &mut written, name, value)?;
            }
        }
    }
    out.push('}');
    Ok(())
}

/// The field keys of a line written so far.
#[derive(Default)]
struct Written(Vec<Key<'static>>);

/// A field's key: `name`, or `field.<name>` when `prefixed`.
#[derive(PartialEq, Clone, Copy)]
struct Key<'a> {
    prefixed: bool,
    name: &'a str,
}

/// The key a field named `name` is written under (see the module's rule).
fn key(name: &'static str) -> Key<'static> {
    if RESERVED.contains(&name) {
        return Key {
            prefixed: true,
            name,
        };
    }
    // A field literally named `field.node` has the key a `node` field gets.
    match name.strip_prefix("field.") {
        Some(rest) if RESERVED.contains(&rest) => Key {
            prefixed: true,
            name: rest,
        },
        _ => Key {
            prefixed: false,
            name,
        },
    }
}

/// Writes `,"<key>":<value>` unless the key was written already.
fn write_field(
    out: &mut String,
    written: &mut Written,
    name: &'static str,
    value: &Value,
) -> fmt::Result {
    let key = key(name);
    if written.0.contains(&key) {
        return Ok(());
    }
    written.0.push(key);
    out.push_str(",\"");
    if key.prefixed {
        out.push_str("field.");
    }
    write_str_content(out, key.name);
    write!(out, "\":{value}")
}

/// Writes `s` as a JSON string.
fn write_str(out: &mut String, s: &str) {
    out.push('"');
    write_str_content(out, s);
    out.push('"');
}

/// Writes `s` escaped for a JSON string, without the quotes.
fn write_str_content(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)] // a test fails loudly

    use serde::de::{Deserialize, Deserializer, IgnoredAny, MapAccess, Visitor};
    use tracing_subscriber::layer::SubscriberExt;

    use super::super::captured::Captured;
    use super::*;

    /// The lines `log` writes through a [`FlatJson`] naming node 2.
    fn lines_of(log: impl FnOnce()) -> Vec<String> {
        let out = Captured::default();
        let subscriber = tracing_subscriber::registry().with(FlatJson::new(2, out.clone()));
        tracing::subscriber::with_default(subscriber, log);
        out.text().lines().map(str::to_owned).collect()
    }

    /// The top-level keys of the object `line`, repeats kept (a `Value`
    /// keeps only the last of them).
    fn keys(line: &str) -> Vec<String> {
        struct Keys(Vec<String>);
        struct KeysVisitor;
        impl<'de> Visitor<'de> for KeysVisitor {
            type Value = Keys;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Keys, A::Error> {
                let mut keys = Vec::new();
                while let Some(key) = map.next_key::<String>()? {
                    map.next_value::<IgnoredAny>()?;
                    keys.push(key);
                }
                Ok(Keys(keys))
            }
        }
        impl<'de> Deserialize<'de> for Keys {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Keys, D::Error> {
                d.deserialize_map(KeysVisitor)
            }
        }
        serde_json::from_str::<Keys>(line)
            .unwrap_or_else(|e| panic!("not a JSON object ({e}): {line}"))
            .0
    }

    /// `line` parsed, after checking that no key repeats.
    fn parse(line: &str) -> serde_json::Map<String, Value> {
        let keys = keys(line);
        for key in &keys {
            assert_eq!(
                keys.iter().filter(|k| *k == key).count(),
                1,
                "{key} repeats: {line}"
            );
        }
        match serde_json::from_str(line).unwrap() {
            Value::Object(map) => map,
            other => panic!("not an object: {other}"),
        }
    }

    #[test]
    fn a_line_is_one_flat_object_with_typed_values() {
        let lines = lines_of(|| {
            let applier = tracing::info_span!("state_applier", node = 2_u64);
            let _applier = applier.enter();
            let backend = tracing::info_span!("backend", group = "web", addr = %"10.0.0.1:80");
            let _backend = backend.enter();
            tracing::info!(
                drain = 7_u64,
                deadline_in_ms = 1500_i64,
                ok = true,
                "drain \"started\""
            );
        });
        assert_eq!(lines.len(), 1, "{lines:?}");
        let line = &lines[0];
        assert_eq!(
            keys(line),
            [
                "time",
                "level",
                "node",
                "target",
                "message",
                "span",
                "spans",
                "drain",
                "deadline_in_ms",
                "ok",
                "group",
                "addr",
                "field.node"
            ],
            "{line}"
        );
        let v = parse(line);
        assert!(v["time"].as_str().unwrap().ends_with('Z'), "{line}");
        assert_eq!(v["level"], "INFO");
        assert_eq!(v["node"], 2);
        assert_eq!(v["target"], "sluice::log_format::json::tests");
        assert_eq!(v["message"], "drain \"started\"");
        assert_eq!(v["span"], "backend");
        assert_eq!(v["spans"], "state_applier:backend");
        assert_eq!(v["drain"], 7);
        assert_eq!(v["deadline_in_ms"], 1500);
        assert_eq!(v["ok"], true);
        assert_eq!(v["group"], "web");
        assert_eq!(v["addr"], "10.0.0.1:80");
        assert_eq!(v["field.node"], 2, "a span's node field is kept apart");
        assert!(
            v.values().all(|v| !v.is_object() && !v.is_array()),
            "{line}"
        );
    }

    #[test]
    fn outside_a_span_there_are_no_span_keys() {
        let lines = lines_of(|| tracing::warn!(count = 3_u64, "alone"));
        let v = parse(&lines[0]);
        assert_eq!(v["level"], "WARN");
        assert_eq!(v["count"], 3);
        assert!(!v.contains_key("span") && !v.contains_key("spans"), "{v:?}");
    }

    #[test]
    fn each_key_once_the_nearest_field_wins() {
        let lines = lines_of(|| {
            let outer =
                tracing::info_span!("listener", name = "public", port = 8080_u64, peer = "outer");
            let _outer = outer.enter();
            let inner = tracing::info_span!("connection", peer = "10.1.1.1:5000", port = 1_u64);
            let _inner = inner.enter();
            // An event's own field wins over every span's.
            tracing::info!(peer = "event", "one");
            // Else the innermost span's: `port` is the connection's.
            tracing::info!("two");
        });
        assert_eq!(lines.len(), 2, "{lines:?}");
        let one = parse(&lines[0]);
        assert_eq!(one["peer"], "event");
        assert_eq!(one["port"], 1);
        // A span field `name` is the field, never the span's name.
        assert_eq!(one["name"], "public");
        assert_eq!(one["span"], "connection");
        let two = parse(&lines[1]);
        assert_eq!(two["peer"], "10.1.1.1:5000");
        assert_eq!(two["port"], 1);
        assert_eq!(two["name"], "public");
    }

    #[test]
    fn a_field_named_like_a_line_key_is_prefixed() {
        let lines = lines_of(|| {
            let span = tracing::info_span!("raft", target = "3", time = "span", level = 9_u64);
            let _span = span.enter();
            // openraft has events with a `target` field; a peer's id is a
            // `node` field; a field may even be called `field.node`.
            tracing::info!(
                node = 3_u64,
                "field.node" = 4_u64,
                span = "mine",
                spans = 1_u64,
                "peer late"
            );
        });
        let line = &lines[0];
        let v = parse(line);
        assert_eq!(v["node"], 2, "the line's node is this process's: {line}");
        assert_eq!(
            v["field.node"], 3,
            "the event's first field of that key wins: {line}"
        );
        assert_eq!(v["target"], "sluice::log_format::json::tests");
        assert_eq!(v["field.target"], "3");
        assert_eq!(v["field.time"], "span");
        assert_eq!(v["field.level"], 9);
        assert_eq!(v["span"], "raft");
        assert_eq!(v["field.span"], "mine");
        assert_eq!(v["field.spans"], 1);
        assert_eq!(v["message"], "peer late");
    }

    #[test]
    fn a_recorded_field_replaces_or_joins_the_spans_fields() {
        let lines = lines_of(|| {
            let span = tracing::info_span!("drain", id = 1_u64, closed = tracing::field::Empty);
            let _span = span.enter();
            tracing::info!("before");
            span.record("id", 2_u64);
            span.record("closed", 5_u64);
            tracing::info!("after");
        });
        let before = parse(&lines[0]);
        assert_eq!(before["id"], 1);
        assert!(
            !before.contains_key("closed"),
            "an empty field is not written"
        );
        let after = parse(&lines[1]);
        assert_eq!(after["id"], 2);
        assert_eq!(after["closed"], 5);
    }

    #[test]
    fn strings_are_escaped_and_errors_are_their_text() {
        let error = std::io::Error::other("disk \"full\"\n");
        let lines = lines_of(|| {
            tracing::error!(
                error = &error as &dyn std::error::Error,
                path = "a\\b\tc\u{1}",
                "stopped"
            );
        });
        assert_eq!(lines.len(), 1, "one line per event: {lines:?}");
        let v = parse(&lines[0]);
        assert_eq!(v["error"], "disk \"full\"\n");
        assert_eq!(v["path"], "a\\b\tc\u{1}");
    }
}
