//! The node's two log formats, text and JSON; every line names the node
//! that wrote it.
//!
//! What: `node=<id>` after the level in the text format (`text.rs`), a
//! top-level `"node":<id>` in the JSON format (`json.rs`: one flat object
//! per line, each key once; its key rule is documented there).
//!
//! Why: the nodes of a cluster on one host (tests, the benchmark, `docker
//! compose logs`) write interleaved logs. A span would not do: actors,
//! spawned tasks and threads (the stop watchdog, openraft's and sled's
//! tasks) do not inherit one, so their lines would go unnamed.
//!
//! How: the id is a constant of the process, written by the formatter of
//! every line, ahead of the line's own text.

#[cfg(test)]
mod captured;
mod field_values;
mod json;
mod text;

pub use json::FlatJson;
pub use text::NodeText;
