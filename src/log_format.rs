//! Log lines that name the node that wrote them.
//!
//! What: every line of a node process carries its id — `node=2` after the
//! level in the text format, a top-level `"node": 2` in the JSON format.
//!
//! Why: the nodes of a cluster on one host (tests, the benchmark, `docker
//! compose logs`) write interleaved logs. A span would not do: actors,
//! spawned tasks and threads (the stop watchdog, openraft's and sled's
//! tasks) do not inherit one, so their lines would go unnamed.
//!
//! How: the subscriber's event formatter is wrapped. The id is a constant of
//! the process, written before the line's own text: the text format writes
//! time, level and `node=<id>`, then the default format without its time
//! and level; the JSON format opens its object with `"node":<id>` ahead of
//! the default format's keys (none of which is `node`; event fields stay
//! under `fields`).

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Json, JsonFields, Writer};
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent};
use tracing_subscriber::registry::LookupSpan;

/// The text format with `node=<id>` after the level.
pub struct NodeText {
    node: u64,
    rest: Format<Full, ()>,
}

impl NodeText {
    pub fn new(node: u64) -> Self {
        NodeText {
            node,
            rest: Format::default().without_time().with_level(false),
        }
    }
}

impl<S> FormatEvent<S, DefaultFields> for NodeText
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, DefaultFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let level = *event.metadata().level();
        if writer.has_ansi_escapes() {
            writer.write_str("\x1b[2m")?;
            write_time(&mut writer)?;
            write!(writer, "\x1b[0m {}{level:>5}\x1b[0m ", color(level))?;
        } else {
            write_time(&mut writer)?;
            write!(writer, " {level:>5} ")?;
        }
        write!(writer, "node={} ", self.node)?;
        self.rest.format_event(ctx, writer, event)
    }
}

/// The time as the default format writes it (RFC 3339, UTC).
fn write_time(writer: &mut Writer<'_>) -> fmt::Result {
    if SystemTime.format_time(writer).is_err() {
        writer.write_str("<unknown time>")?;
    }
    Ok(())
}

/// The default format's colour of `level`.
fn color(level: Level) -> &'static str {
    match level {
        Level::TRACE => "\x1b[35m",
        Level::DEBUG => "\x1b[34m",
        Level::INFO => "\x1b[32m",
        Level::WARN => "\x1b[33m",
        Level::ERROR => "\x1b[31m",
    }
}

/// The JSON format with a top-level `"node"` key first.
pub struct NodeJson {
    node: u64,
    rest: Format<Json>,
}

impl NodeJson {
    pub fn new(node: u64) -> Self {
        NodeJson {
            node,
            rest: Format::default().json(),
        }
    }
}

impl<S> FormatEvent<S, JsonFields> for NodeJson
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, JsonFields>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut node_first = NodeFirst {
            out: &mut writer,
            node: self.node,
            opened: false,
        };
        self.rest
            .format_event(ctx, Writer::new(&mut node_first), event)
    }
}

/// Passes a JSON object through, with `"node":<id>` as its first key.
struct NodeFirst<'a, W> {
    out: &'a mut W,
    node: u64,
    /// Whether the object's opening brace went by.
    opened: bool,
}

impl<W: fmt::Write> fmt::Write for NodeFirst<'_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        if !self.opened && !s.is_empty() {
            self.opened = true;
            if let Some(rest) = s.strip_prefix('{') {
                write!(self.out, "{{\"node\":{},", self.node)?;
                return self.out.write_str(rest);
            }
        }
        self.out.write_str(s)
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::fmt::MakeWriter;

    use super::*;

    /// Collects what the subscriber writes.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Self::Writer {
            self.clone()
        }
    }

    impl Captured {
        fn text(&self) -> String {
            String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
        }
    }

    fn log_some_lines() {
        let span = tracing::info_span!("drain", id = 4);
        let _entered = span.enter();
        tracing::info!(backend = "10.0.0.1:80", "draining");
        tracing::warn!(node = 3, "a peer is late");
    }

    #[test]
    fn text_lines_name_the_node_after_the_level() {
        let out = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .with_ansi(false)
            .event_format(NodeText::new(2))
            .finish();
        tracing::subscriber::with_default(subscriber, log_some_lines);
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        assert!(
            lines[0].ends_with(
                "  INFO node=2 drain{id=4}: sluice::log_format::tests: draining backend=\"10.0.0.1:80\""
            ),
            "{}",
            lines[0]
        );
        assert!(
            lines[1].contains("  WARN node=2 drain{id=4}: "),
            "{}",
            lines[1]
        );
        assert!(lines[1].ends_with("a peer is late node=3"), "{}", lines[1]);
    }

    #[test]
    fn json_lines_carry_the_node_once_at_the_top() {
        let out = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(out.clone())
            .json()
            .event_format(NodeJson::new(2))
            .finish();
        tracing::subscriber::with_default(subscriber, log_some_lines);
        let text = out.text();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2, "{text}");
        for line in &lines {
            assert!(line.starts_with("{\"node\":2,\"timestamp\":"), "{line}");
            assert_eq!(line.matches("\"node\":2").count(), 1, "{line}");
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert_eq!(v["node"], 2, "{line}");
            assert_eq!(v["span"]["id"], 4, "{line}");
        }
        let warn: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
        assert_eq!(
            warn["fields"]["node"], 3,
            "an event's own field stays its own"
        );
    }
}
