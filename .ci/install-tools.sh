#!/usr/bin/env bash
# Install the external tools the deploy tests need (tests/test_deploy_*.py), and the install's C compiler:
#   prometheus + promtool  <- Debian's `prometheus` package
#   systemd-analyze        <- Debian's `systemd` package
#   gcc, Python.h          <- Debian's `gcc` and `python3-dev` (feeds/_levels.c)
# Idempotent and quiet: does nothing when the tools are on PATH; otherwise apt-get installs them (root
# needed) and prints one line, or apt's output if that fails.
set -euo pipefail

need=()
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    need+=(prometheus)
fi
command -v systemd-analyze >/dev/null 2>&1 || need+=(systemd)
# The install compiles feeds/_levels.c (setup.py): a C compiler and the headers of the Python the Makefile
# builds with ($PYTHON, python3 by default), unless ARBSCAN_PURE_PYTHON=1 installs without it.
python="${PYTHON:-python3}"
has_headers() {
    "$python" -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(sysconfig.get_paths()["include"] + "/Python.h"))'
}
compiles=1
[ "${ARBSCAN_PURE_PYTHON:-}" = "1" ] && compiles=0
if [ "$compiles" = 1 ]; then
    command -v gcc >/dev/null 2>&1 || need+=(gcc)
    has_headers || need+=(python3-dev)
fi
[ ${#need[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "install-tools: root is needed to apt-get install ${need[*]}" >&2
    exit 1
fi

echo "install-tools: apt-get install ${need[*]}"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}"; } >"$log" 2>&1; then
    cat "$log" >&2
    echo "install-tools: apt-get failed" >&2
    exit 1
fi

# The package enables a Prometheus service on :9090 where systemd runs; the tests start their own
# instance on a free loopback port, so do not leave one running that nobody asked for.
if [[ " ${need[*]} " == *" prometheus "* ]] && [ -d /run/systemd/system ]; then
    systemctl disable --now prometheus.service >/dev/null 2>&1 || true
fi

tools=(prometheus promtool systemd-analyze)
[ "$compiles" = 1 ] && tools+=(gcc)
for tool in "${tools[@]}"; do
    command -v "$tool" >/dev/null 2>&1 || { echo "install-tools: $tool is still missing" >&2; exit 1; }
done
if [ "$compiles" = 1 ] && ! has_headers; then
    echo "install-tools: Python.h of $python is still missing (python3-dev is for the system python3)" >&2
    exit 1
fi
