//! The set workload: a couple of clients add unique backends
//! (`10.78.x.y:80`, never contacted) to group `set`, each once. After the
//! heal, every acknowledged add must be on every node.

use std::sync::Arc;

use reqwest::Method;
use serde_json::json;
use sluice_jepsen::history::{Op, OpKind, Outcome};

use super::admin::SET_GROUP;
use super::clients::{outcome, Api, WRITE_TIMEOUT};
use super::{now, Recorder, Rng, Stop};

/// The `k`th key: `10.78.x.y:80`.
fn key(k: u64) -> String {
    format!("10.78.{}.{}:80", (k / 250) % 256, k % 250 + 1)
}

/// Runs client `index` of `clients` until `stop`.
pub async fn client(
    index: u32,
    clients: u32,
    api: Api,
    rec: Arc<Recorder>,
    seed: u64,
    mut stop: Stop,
) {
    let mut rng = Rng::new(seed, 0x2000 + u64::from(index));
    let mut process = 1000 + index;
    let mut k = u64::from(index);
    let path = format!("/v1/groups/{SET_GROUP}/backends");
    while !stop.is_set() {
        let key = key(k);
        k += u64::from(clients);
        let node = rng.node();
        let body = json!({ "addr": key });
        let invoke = now();
        let reply = api
            .call(node, Method::POST, &path, Some(&body), WRITE_TIMEOUT)
            .await;
        let complete = now();
        let outcome = outcome(&reply);
        let indeterminate = matches!(outcome, Outcome::Info { .. });
        let id = rec.id();
        rec.with(|h| {
            h.ops.push(Op {
                id,
                process,
                node,
                invoke,
                complete,
                kind: OpKind::SetAdd { key },
                outcome,
            })
        });
        if indeterminate {
            process += clients;
        }
        if !stop.sleep(rng.millis(100, 300)).await {
            break;
        }
    }
}
