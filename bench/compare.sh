#!/usr/bin/env bash
# sluice side by side with HAProxy and nginx on this machine, in one run.
#
#   bench/compare.sh [--smoke] [extra sluice-bench args]
#
# Installs what is missing from Debian's packages (haproxy, nginx, wrk,
# nghttp2-client for h2load, util-linux for taskset, iproute2) with
# apt-get, builds `sluice` and `sluice-bench` (release; --smoke uses the
# debug profile, so CI reuses its test build), then runs sluice-bench with the binaries' paths. The results
# are markdown on stdout; `--out docs/benchmarks.md` also writes them to a
# file. Everything else (configs, processes, pinning, cleanup) is
# sluice-bench's: see crates/sluice-bench.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=release
for arg in "$@"; do
  if [[ "$arg" == "--smoke" ]]; then
    profile=debug
  fi
done

need=()
command -v haproxy >/dev/null 2>&1 || need+=(haproxy)
command -v nginx >/dev/null 2>&1 || need+=(nginx)
command -v wrk >/dev/null 2>&1 || need+=(wrk)
command -v h2load >/dev/null 2>&1 || need+=(nghttp2-client)
command -v taskset >/dev/null 2>&1 || need+=(util-linux)
command -v ss >/dev/null 2>&1 || need+=(iproute2)
if [[ ${#need[@]} -gt 0 ]]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "compare.sh: missing ${need[*]} and no apt-get to install them" >&2
    exit 1
  fi
  sudo=()
  [[ "$(id -u)" -eq 0 ]] || sudo=(sudo)
  echo "compare.sh: installing ${need[*]}" >&2
  "${sudo[@]}" apt-get update -qq
  # Debian may start the nginx and haproxy services on install; the
  # benchmark never uses their default ports and starts its own copies.
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
    --no-install-recommends "${need[@]}" >/dev/null
fi

if [[ "$profile" == release ]]; then
  cargo build --release -p sluice -p sluice-bench
else
  cargo build -p sluice -p sluice-bench
fi

target=${CARGO_TARGET_DIR:-target}
exec "$target/$profile/sluice-bench" --sluice "$target/$profile/sluice" "$@"
