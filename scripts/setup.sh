#!/usr/bin/env bash
# First-use set-up for a fresh clone: npm dependencies, then a WebGPU adapter for Dawn.
# With --test, also what the test suite's oracles need (PyTorch/torchvision, Fashion-MNIST).
# Safe to run again: each step checks before it installs. Prints what it installs and why.
set -euo pipefail
cd "$(dirname "$0")/.."
for_tests=0
[[ "${1:-}" == --test ]] && for_tests=1

say() { printf '[celluscan setup] %s\n' "$*" >&2; }
die() { printf '[celluscan setup] error: %s\n' "$*" >&2; exit 1; }

# 1. npm dependencies (when node_modules is missing or older than the lock file).
if [[ ! -d node_modules/webgpu || ! -d node_modules/vitest || package-lock.json -nt node_modules/.package-lock.json ]]; then
  say "installing npm dependencies (npm ci) — node_modules is missing or out of date"
  npm ci --no-audit --no-fund >&2 || die "npm ci failed; check your network access to the npm registry"
fi

node scripts/gen-shaders.mjs

# apt packages, installed together when any is missing.
apt_install() { # why, packages...
  local why="$1"; shift
  local missing=()
  for p in "$@"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p"); done
  ((${#missing[@]})) || return 0
  say "installing ${missing[*]} — $why"
  [[ "$(id -u)" == 0 ]] || die "installing ${missing[*]} needs root: run 'sudo apt-get install ${missing[*]}' and try again"
  command -v apt-get >/dev/null || die "no apt-get on this machine: install ${missing[*]} (or their equivalents) yourself"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  apt-get install -y -qq "${missing[@]}" >&2 || die "apt-get install ${missing[*]} failed"
}

apt_install "the Fashion-MNIST data the main job (and the training tests) train on" dataset-fashion-mnist
apt_install "a font for the charts' labels (loss curves, confusion matrices, benchmark charts: blank text without one)" fonts-dejavu-core
if ((for_tests)); then
  apt_install "the tests' oracle: torchvision models with random weights for parity checks" python3-torch python3-torchvision libopenblas0-pthread
  apt_install "headless Chromium for the browser test (WebGPU through SwiftShader)" chromium
fi

# 2. A WebGPU adapter. Dawn needs a Vulkan driver; on a Linux machine without a GPU that is Mesa's lavapipe.
probe_adapter() { XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-/tmp}" node scripts/probe-adapter.mjs 2>/dev/null; }
if probe_adapter >/dev/null; then
  exit 0
fi
[[ "$(uname -s)" == Linux ]] || die "Dawn found no WebGPU adapter. Install your GPU's Vulkan/Metal/D3D12 driver and try again."
say "Dawn found no WebGPU adapter; installing a Vulkan driver: libvulkan1 and Mesa's lavapipe (software Vulkan)"
say "from bookworm-backports (Debian 12's own Mesa 22.3 is refused by Dawn)"
[[ "$(id -u)" == 0 ]] || die "installing libvulkan1 + mesa-vulkan-drivers needs root. Run as root: sudo bash scripts/setup.sh, or install a Vulkan driver yourself (see README, 'Set-up')."
command -v apt-get >/dev/null || die "no apt-get on this machine. Install a Vulkan driver (libvulkan + Mesa >= 24 lavapipe, or your GPU's driver) and try again."
. /etc/os-release
codename="${VERSION_CODENAME:-}"
if [[ "$codename" == bookworm ]]; then
  if ! grep -rqs 'bookworm-backports' /etc/apt/sources.list /etc/apt/sources.list.d/; then
    uri=$(grep -hs -m1 -E '^URIs: .*debian/?$' /etc/apt/sources.list.d/*.sources | awk '{print $2}' || true)
    [[ -n "$uri" ]] || uri=$(grep -hs -m1 -E '^deb .*debian/? bookworm' /etc/apt/sources.list | awk '{print $2}' || true)
    [[ -n "$uri" ]] || uri=http://deb.debian.org/debian
    say "adding the apt suite bookworm-backports ($uri)"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' "$uri" \
      > /etc/apt/sources.list.d/celluscan-backports.sources
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  apt-get install -y -qq libvulkan1 >&2 || die "apt-get install libvulkan1 failed"
  apt-get install -y -qq -t bookworm-backports mesa-vulkan-drivers >&2 || die "apt-get install -t bookworm-backports mesa-vulkan-drivers failed"
else
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2 || die "apt-get update failed"
  apt-get install -y -qq libvulkan1 mesa-vulkan-drivers >&2 || die "apt-get install libvulkan1 mesa-vulkan-drivers failed"
fi
probe_adapter >/dev/null || die "a Vulkan driver is installed but Dawn still finds no adapter; run 'node scripts/probe-adapter.mjs' to see Dawn's message"
say "WebGPU adapter ready"
