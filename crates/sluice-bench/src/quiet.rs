//! The quiet-machine check before each measured run: with our own stack
//! idle, machine-wide CPU use is sampled from `/proc/stat` over 0.5 s;
//! above the threshold some other process is busy (a build, another user),
//! so we wait — up to a limit — for it to calm down, then run anyway and
//! flag the run as contended.

use std::time::{Duration, Instant};

use crate::procfs::{busy_percent, cpu_sample};

/// How long one sample lasts.
const SAMPLE: Duration = Duration::from_millis(500);

/// What the check saw.
#[derive(Clone, Copy, Debug, Default)]
pub struct Quiet {
    /// CPU use of the last sample, percent summed over the CPUs.
    pub busy: f64,
    /// How long it waited.
    pub waited: Duration,
    /// Still busier than the threshold when it gave up.
    pub contended: bool,
}

/// Samples until the machine is at most `threshold` % busy (summed over
/// CPUs) or `max_wait` has passed.
pub async fn wait_quiet(threshold: f64, max_wait: Duration) -> Quiet {
    let start = Instant::now();
    loop {
        let before = cpu_sample();
        tokio::time::sleep(SAMPLE).await;
        let busy = busy_percent(&before, &cpu_sample());
        let waited = start.elapsed();
        if busy <= threshold || waited >= max_wait {
            return Quiet {
                busy,
                waited,
                contended: busy > threshold,
            };
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}
