#!/usr/bin/env bash
# demo.sh — the agent's main job end to end on this machine (grows with the project).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")"
echo "==> installing missing packages"; scripts/deps.sh
echo "==> building (preset default)"; cmake --preset default >/dev/null; cmake --build --preset default -j "$(nproc)"
echo "==> checking the sample configuration"
build/default/agent/mtls-agent --check-config --config config/mtls-agent.toml
