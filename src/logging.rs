//! The node's log subscriber, and reloading its level and format on SIGHUP.
//!
//! Two formatting layers are installed, text and JSON (each line names the
//! node, `log_format`); each has a reloadable filter, and the one not in use
//! has `off`, so it formats nothing. A reload sets both filters. The filter
//! in use is `log_filter`'s: openraft at `warn` unless it is named.

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{filter::EnvFilter, fmt, reload, Layer};

use crate::config::{LogFormat, NodeConfig};
use crate::{log_filter, log_format};

/// Changes the installed subscriber's level and format.
pub struct LogReload {
    text: SetFilter,
    json: SetFilter,
}

/// Replaces one layer's filter.
type SetFilter = Box<dyn Fn(EnvFilter) -> Result<(), reload::Error> + Send + Sync>;

/// Installs the subscriber for `config` (`RUST_LOG`, when set, wins over
/// `[log] level` at start).
pub fn init(config: &NodeConfig) -> LogReload {
    let from_env = std::env::var(EnvFilter::DEFAULT_ENV)
        .ok()
        .and_then(|directives| log_filter::build(&directives).ok());
    let level = from_env.unwrap_or_else(|| {
        // The config's level passed validation.
        log_filter::build(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"))
    });
    let (text_filter, json_filter) = match config.log_format {
        LogFormat::Text => (level, off()),
        LogFormat::Json => (off(), level),
    };
    let (text_filter, text) = reload::Layer::new(text_filter);
    let (json_filter, json) = reload::Layer::new(json_filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let text_layer = fmt::layer()
        .with_ansi(ansi)
        .event_format(log_format::NodeText::new(config.node_id))
        .with_filter(text_filter);
    let json_layer =
        log_format::FlatJson::new(config.node_id, std::io::stdout).with_filter(json_filter);
    tracing_subscriber::registry()
        .with(text_layer)
        .with(json_layer)
        .init();
    LogReload {
        text: Box::new(move |f| text.reload(f)),
        json: Box::new(move |f| json.reload(f)),
    }
}

fn off() -> EnvFilter {
    EnvFilter::new("off")
}

impl LogReload {
    /// Logs at `level` (checked by the config's validation) in `format`
    /// from now on.
    pub fn set(&self, level: &str, format: LogFormat) -> Result<(), String> {
        let level = log_filter::build(level).map_err(|e| e.to_string())?;
        let (text, json) = match format {
            LogFormat::Text => (level, off()),
            LogFormat::Json => (off(), level),
        };
        (self.text)(text).map_err(|e| e.to_string())?;
        (self.json)(json).map_err(|e| e.to_string())
    }
}
