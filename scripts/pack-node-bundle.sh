#!/usr/bin/env bash
# Packs the CLI into a folder that runs on a bare x86-64 Linux machine with no npm and no internet (e.g. a borrowed
# GPU machine): one esbuild bundle of src/cli/main.ts, the native modules it loads (Dawn's dawn.node, resvg for
# charts, and onnxruntime-node for the vit bench's ONNX Runtime peer when it is installed here), the Python peers in
# tools/, and this machine's node binary. The large binaries travel xz-compressed (the device tool carries 64 MiB):
# node.xz, and *.xz beside where dawn.node and libonnxruntime.so.1 belong; scripts/device-bench.sh unpacks them.
#
#   bash scripts/pack-node-bundle.sh [OUT_DIR]        (default .devpack; ~47 MB with onnxruntime-node, ~34 without)
#
# On the other machine:  bash scripts/device-bench.sh  (or by hand: xz -d every OUT/app/**/*.xz, then
#   xz -dc OUT/node.xz > /tmp/node && chmod +x /tmp/node && /tmp/node OUT/app/dist/celluscan.mjs bench)
# Results land in OUT/app/dist/results/ (bench/results' layout; scripts/device-bench.sh records into its own $OUT). Dawn needs a Vulkan loader (libvulkan.so.1) and the
# GPU's Vulkan driver there.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-.devpack}
node scripts/gen-shaders.mjs >/dev/null
rm -rf "$out/app"
mkdir -p "$out/app/dist" "$out/app/tools" "$out/app/node_modules/webgpu/dist/linux-x64" "$out/app/node_modules/@resvg"
npx esbuild src/cli/main.ts --bundle --platform=node --format=esm --target=node20 \
  --outfile="$out/app/dist/celluscan.mjs" \
  --external:webgpu --external:@resvg/resvg-js --external:onnxruntime-node --external:playwright-core \
  --banner:js="import { createRequire as __cr } from 'node:module'; const require = __cr(import.meta.url);" --log-level=warning
cp node_modules/webgpu/index.js node_modules/webgpu/package.json "$out/app/node_modules/webgpu/"
xz -T0 -6 -c node_modules/webgpu/dist/linux-x64/dawn.node > "$out/app/node_modules/webgpu/dist/linux-x64/dawn.node.xz"
cp -r node_modules/@resvg/resvg-js node_modules/@resvg/resvg-js-linux-x64-gnu "$out/app/node_modules/@resvg/"
cp tools/*.py "$out/app/tools/"
# A font for the charts (a bare GPU machine has none, and resvg then draws every label blank): device-bench.sh points
# CELLUSCAN_FONT_DIRS at it.
mkdir -p "$out/app/fonts"
if [ -f /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf ]; then cp /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf "$out/app/fonts/"
else echo "pack: no /usr/share/fonts/truetype/dejavu/DejaVuSans.ttf (Debian's fonts-dejavu-core): charts made on the other machine may have blank labels" >&2; fi
# The GPU results recorded so far: scripts/device-bench.sh merges the new run's rows into them (a bench the run does
# not reach keeps its last recorded rows).
mkdir -p "$out/app/dist/results"; cp bench/results/nvidia-*.json "$out/app/dist/results/" 2>/dev/null || true
# ONNX Runtime (not a dependency: `npm install --no-save --ignore-scripts onnxruntime-node@1.30.0`): its JS, the
# package it re-exports, and the linux-x64 binding with its library. Without it the bench's ORT row says so.
ort=node_modules/onnxruntime-node
if [ -f "$ort/bin/napi-v6/linux/x64/libonnxruntime.so.1" ] && [ -d node_modules/onnxruntime-common ]; then
  mkdir -p "$out/app/$ort/bin/napi-v6/linux/x64"
  cp -r "$ort/package.json" "$ort/dist" "$out/app/$ort/"
  cp -r node_modules/onnxruntime-common "$out/app/node_modules/"
  cp "$ort/bin/napi-v6/linux/x64/onnxruntime_binding.node" "$out/app/$ort/bin/napi-v6/linux/x64/"
  xz -T0 -6 -c "$ort/bin/napi-v6/linux/x64/libonnxruntime.so.1" > "$out/app/$ort/bin/napi-v6/linux/x64/libonnxruntime.so.1.xz"
  echo "packed onnxruntime-node $(node -p "require('./$ort/package.json').version")"
else
  echo "onnxruntime-node is not installed here: the pack has no ONNX Runtime peer (npm install --no-save --ignore-scripts onnxruntime-node@1.30.0)"
fi
echo '{"type":"module"}' > "$out/app/package.json"
if [ ! -f "$out/node.xz" ] || [ "$(node --version)" != "$(cat "$out/node.version" 2>/dev/null)" ]; then
  xz -T0 -6 -c "$(command -v node)" > "$out/node.xz.tmp" && mv "$out/node.xz.tmp" "$out/node.xz"
  node --version > "$out/node.version"
fi
du -sh "$out"
# The device tool carries at most 64 MiB in all (this folder and the Vulkan packages in .gl).
kib=$(du -sk "$out" | cut -f1)
if [ "$kib" -gt $((60 * 1024)) ]; then echo "pack: $out is ${kib} KiB, over the 60 MiB that leaves room for .gl within the device tool's 64 MiB" >&2; exit 1; fi
