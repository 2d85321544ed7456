#!/usr/bin/env bash
# SIP load benchmark (see bench/sip_load.py): SIPp with RTP → Kamailio → SIP worker pool.
# Needs sip-tester and kamailio (scripts/install-test-deps.sh installs them).
set -euo pipefail
cd "$(dirname "$0")/.."
command -v sipp >/dev/null && command -v kamailio >/dev/null || bash scripts/install-test-deps.sh
exec .venv/bin/python bench/sip_load.py "$@"
