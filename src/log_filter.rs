//! The node's log filter: `[log] level` (or `RUST_LOG`) with openraft kept
//! at `warn` unless the filter names it.
//!
//! What: `info` becomes `info,openraft=warn`; `info,openraft=info`,
//! `warn` and `error` stay as they are.
//!
//! Why: at `info` openraft writes most of a node's lines (58 of 79 at a
//! start, some of them kilobyte-long struct dumps) about its own routine.
//! sluice logs what an operator needs of it in one line each (leader
//! elected, membership changed, snapshot built or installed: the metrics
//! watch in sluice-raft, the state machine), so openraft's warnings and
//! errors are all that is left of it by default.
//!
//! How: the filter's directives are read as `tracing-subscriber` reads
//! them (comma-separated, `target=level`, a bare level the default). When
//! no directive's target is a prefix of `openraft` (which is how a target
//! matches) and the default level is more verbose than `warn`,
//! `openraft=warn` is added.

use std::str::FromStr;

use tracing_subscriber::filter::{EnvFilter, LevelFilter, ParseError};

/// Targets lowered to `warn` unless the filter names them.
const QUIETED: [&str; 1] = ["openraft"];

/// The filter for `directives` (a level or a filter such as
/// `info,sluice_proxy=debug`), with [`QUIETED`] targets lowered.
pub fn build(directives: &str) -> Result<EnvFilter, ParseError> {
    EnvFilter::try_new(with_quieted(directives))
}

/// `directives` with `<target>=warn` added for each quieted target it
/// neither names nor already logs at `warn` or less.
pub fn with_quieted(directives: &str) -> String {
    let parts: Vec<&str> = directives
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .collect();
    // A filter without a default level enables no other target.
    let default = parts
        .iter()
        .filter_map(|d| LevelFilter::from_str(d).ok())
        .next_back()
        .unwrap_or(LevelFilter::OFF);
    let mut out = directives.to_owned();
    if default <= LevelFilter::WARN {
        return out;
    }
    for quiet in QUIETED {
        let named = parts.iter().any(|d| {
            let target = d.split(['=', '[']).next().unwrap_or_default();
            LevelFilter::from_str(d).is_err() && !target.is_empty() && quiet.starts_with(target)
        });
        if !named {
            if !out.trim().is_empty() {
                out.push(',');
            }
            out.push_str(quiet);
            out.push_str("=warn");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn openraft_is_lowered_unless_named() {
        for (given, expected) in [
            ("info", "info,openraft=warn"),
            ("debug", "debug,openraft=warn"),
            (
                "info,sluice_proxy=debug",
                "info,sluice_proxy=debug,openraft=warn",
            ),
            ("sluice=debug,trace", "sluice=debug,trace,openraft=warn"),
            // Named: left alone, whatever its level.
            ("info,openraft=info", "info,openraft=info"),
            ("openraft=debug,info", "openraft=debug,info"),
            ("info,openraft[append]=debug", "info,openraft[append]=debug"),
            // A longer target names only part of openraft: the rest is lowered.
            (
                "info,openraft::engine=info",
                "info,openraft::engine=info,openraft=warn",
            ),
            // At warn or less nothing needs lowering (error stays error).
            ("warn", "warn"),
            ("error", "error"),
            ("off", "off"),
            ("sluice=debug", "sluice=debug"),
        ] {
            assert_eq!(with_quieted(given), expected, "{given}");
            assert!(build(given).is_ok(), "{given}");
        }
    }

    #[test]
    fn an_invalid_filter_stays_invalid() {
        assert!(build("[[").is_err());
    }
}
