#!/usr/bin/env bash
# Installs the Debian packages the build, the tests and the local demo need.
# Idempotent: does nothing when every package is present. Needs root (or sudo)
# only when something is missing.
set -euo pipefail

pkgs=(build-essential pkg-config libpq-dev libcurl4-openssl-dev libjansson-dev
      uuid-dev libmicrohttpd-dev check libssl-dev postgresql curl ca-certificates
      nodejs npm openssl pgbouncer nginx-light
      clang-14 libclang-rt-14-dev chromium fonts-dejavu-core
      python3-prometheus-client)
# clang-14 is the fuzzing build's compiler (make fuzz, the suite "fuzz"); on
# Debian 12 its libFuzzer runtime (-fsanitize=fuzzer) is in libclang-rt-14-dev,
# which clang-14 does not pull in. chromium is the headless browser of the suite
# "pages" (tests/pages: the admin page and the demo storefront), and
# fonts-dejavu-core the font of its screenshots (chromium only recommends one).
# python3-prometheus-client parses /metrics in the suite "metrics"
# (tests/metrics_check.py, run with /usr/bin/python3). pgbouncer is for make
# test-pgbouncer and make run PGBOUNCER=1, nginx-light the load balancer of the
# suite "instances".

missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" \
    || missing+=("$p")
done
# nodejs/npm may come from elsewhere than Debian's packages: a working binary is enough.
if command -v node >/dev/null && command -v npm >/dev/null; then
  keep=()
  for p in "${missing[@]}"; do [[ $p == nodejs || $p == npm ]] || keep+=("$p"); done
  missing=("${keep[@]+"${keep[@]}"}")
fi
[ ${#missing[@]} -eq 0 ] && exit 0

echo "deps: installing ${missing[*]}" >&2
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
