//! The register workload: a few clients add, remove, reweight and read
//! backends of group `reg`, each key a backend address never contacted
//! (`10.77.x.y:80`, health checks off). Keys come in small pools, a new
//! pool every `key_pool_period`, so that each key's history stays small
//! enough for the linearizability checker.
//!
//! A client is a logical process with one operation at a time; after an
//! indeterminate operation (which may still take effect at any time) it
//! continues as a new process, as Jepsen does.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;
use sluice_jepsen::history::{Op, OpKind};

use super::admin::REGISTER_GROUP;
use super::clients::{outcome, Api, READ_TIMEOUT, WRITE_TIMEOUT};
use super::{now, Recorder, Rng, Stop};

/// Slots reserved per key pool; a pool uses 3..=5 of them.
const POOL_SLOTS: u64 = 5;

/// The keys of the pool in force `elapsed` into the run.
pub fn pool(seed: u64, period: Duration, elapsed: Duration) -> Vec<String> {
    let generation = elapsed.as_millis() / period.as_millis().max(1);
    let generation = u64::try_from(generation).unwrap_or(0);
    let size = Rng::new(seed, 0x9001_0000 + generation).range(3, 5);
    (0..size)
        .map(|i| key(generation * POOL_SLOTS + i))
        .collect()
}

/// The `k`th key: `10.77.x.y:80`.
fn key(k: u64) -> String {
    format!("10.77.{}.{}:80", (k / 250) % 256, k % 250 + 1)
}

/// Runs client `index` of `clients` until `stop`.
pub async fn client(
    index: u32,
    clients: u32,
    api: Api,
    rec: Arc<Recorder>,
    seed: u64,
    period: Duration,
    mut stop: Stop,
) {
    let mut rng = Rng::new(seed, 0x1000 + u64::from(index));
    let started = Instant::now();
    let mut process = index;
    while !stop.is_set() {
        let keys = pool(seed, period, started.elapsed());
        let key = keys[usize::try_from(rng.range(0, keys.len() as u64 - 1)).unwrap_or(0)].clone();
        let weight = u8::try_from(rng.range(1, 100)).unwrap_or(1);
        let roll = rng.range(0, 99);
        let kind = match roll {
            0..=29 => OpKind::Add { key, weight },
            30..=49 => OpKind::Remove { key },
            50..=69 => OpKind::Reweight { key, weight },
            _ => OpKind::Read { key },
        };
        let node = rng.node();
        let base = format!("/v1/groups/{REGISTER_GROUP}/backends");
        let invoke = now();
        let reply = match &kind {
            OpKind::Add { key, weight } => {
                let body = json!({ "addr": key, "weight": weight });
                api.call(node, Method::POST, &base, Some(&body), WRITE_TIMEOUT)
                    .await
            }
            OpKind::Remove { key } => {
                api.call(
                    node,
                    Method::DELETE,
                    &format!("{base}/{key}"),
                    None,
                    WRITE_TIMEOUT,
                )
                .await
            }
            OpKind::Reweight { key, weight } => {
                let body = json!({ "weight": weight });
                api.call(
                    node,
                    Method::PATCH,
                    &format!("{base}/{key}"),
                    Some(&body),
                    WRITE_TIMEOUT,
                )
                .await
            }
            OpKind::Read { key } => {
                api.get(node, &format!("{base}/{key}?consistent=true"), READ_TIMEOUT)
                    .await
            }
            OpKind::SetAdd { .. } => continue,
        };
        let complete = now();
        let outcome = outcome(&reply);
        let indeterminate = matches!(outcome, sluice_jepsen::history::Outcome::Info { .. });
        let id = rec.id();
        rec.with(|h| {
            h.ops.push(Op {
                id,
                process,
                node,
                invoke,
                complete,
                kind,
                outcome,
            })
        });
        if indeterminate {
            process += clients;
        }
        if !stop.sleep(rng.millis(50, 250)).await {
            break;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_are_small_disjoint_and_stable() {
        let period = Duration::from_secs(20);
        let a = pool(7, period, Duration::from_secs(1));
        let b = pool(7, period, Duration::from_secs(19));
        let c = pool(7, period, Duration::from_secs(21));
        assert_eq!(a, b);
        assert!((3..=5).contains(&a.len()));
        assert!(c.iter().all(|k| !a.contains(k)));
    }
}
