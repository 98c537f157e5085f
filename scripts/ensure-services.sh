#!/usr/bin/env bash
# Make sure the services the tests talk to exist on this machine.
# Redis: tests use SERVAL_TEST_REDIS_URL, else 127.0.0.1:6379; when nothing answers
# there, the test session starts its own redis-server on a free port (tests/_services.py),
# so the binary must be installed.
set -euo pipefail
need=()
command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
# wrk: the load generator the benchmarks prefer (their smoke test runs it too).
command -v wrk >/dev/null 2>&1 || need+=(wrk)
# chromium: the dashboard's browser test loads /-/dashboard in headless Chromium.
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing: ${need[*]}"
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
  fi
fi
