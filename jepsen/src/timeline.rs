//! `timeline.html`: the operations and the fault windows on one time axis.

use std::io;
use std::path::Path;

use crate::history::History;
use crate::report::RunInfo;

/// Writes `dir/timeline.html`.
pub fn write_timeline(dir: &Path, run: &RunInfo, history: &History) -> io::Result<()> {
    let _ = (run, history);
    std::fs::write(dir.join("timeline.html"), "")
}
