#!/usr/bin/env bash
# Installs the Debian packages edgefleet needs to build, run and test.
#
# Idempotent: when every package is already installed it touches nothing (no
# apt-get update, no root needed). Otherwise it runs apt-get as root, or
# through sudo when run as another user. Non-interactive, so it works in CI.
set -euo pipefail

# Build toolchain and libraries.
packages=(
  build-essential cmake pkg-config git ca-certificates curl
  libmicrohttpd-dev libsqlite3-dev sqlite3 libjansson-dev libsodium-dev
  libmosquitto-dev libuv1-dev libcurl4-openssl-dev
  libfann-dev libfann-doc uthash-dev
)
# Running: the MQTT broker and its command-line clients.
packages+=(mosquitto mosquitto-clients)
# Tests: unit (cmocka), integration (pytest), fuzz (clang libFuzzer), bench (wrk).
packages+=(
  libcmocka-dev python3-pytest python3-paho-mqtt python3-yaml python3-nacl python3-jsonschema
  clang libclang-rt-14-dev wrk
)
# Browser tests (web/ dashboard): Debian's chromium, driven by playwright-core
# (npm ci at the repository root installs it and uPlot). Node.js and npm come
# from Debian unless a Node.js with its own npm is already installed (such as
# NodeSource's nodejs, which bundles npm and conflicts with Debian's npm).
packages+=(chromium)
if ! command -v npm >/dev/null 2>&1; then
  packages+=(nodejs npm)
fi

missing=()
for pkg in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
  if [[ "$status" != "installed" ]]; then
    missing+=("$pkg")
  fi
done

if [[ ${#missing[@]} -eq 0 ]]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${#missing[@]} package(s): ${missing[*]}"
if [[ $(id -u) -eq 0 ]]; then
  as_root=()
elif command -v sudo >/dev/null 2>&1; then
  as_root=(sudo)
else
  echo "install-deps: not root and sudo is missing; install as root: ${missing[*]}" >&2
  exit 1
fi

export DEBIAN_FRONTEND=noninteractive
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
echo "install-deps: done"
