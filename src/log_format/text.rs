//! The text format: the default `tracing` line with `node=<id>` after the
//! level (`<time> <LEVEL> node=<id> <spans>: <target>: <message> <fields>`).
//!
//! How: the time and level are written here, then the default format
//! without its own time and level, so span fields show as ever
//! (`listener{port=8080 generation=3}:`).

use std::fmt;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Format, Full, Writer};
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

#[cfg(test)]
mod tests {
    use super::super::captured::Captured;
    use super::*;

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
                "  INFO node=2 drain{id=4}: sluice::log_format::text::tests: draining backend=\"10.0.0.1:80\""
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
}
