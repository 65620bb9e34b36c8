#!/usr/bin/env bash
# Packs the CLI into a folder that runs on a bare x86-64 Linux machine with no npm and no internet (e.g. a borrowed
# GPU machine): one esbuild bundle of src/cli/main.ts, the two native modules it loads (Dawn's dawn.node,
# resvg for charts), the Python peers in tools/, and this machine's node binary (xz-compressed).
#
#   bash scripts/pack-node-bundle.sh [OUT_DIR]        (default .devpack; ~35 MB)
#
# On the other machine:  xz -dc OUT/node.xz > /tmp/node && chmod +x /tmp/node && /tmp/node OUT/app/dist/celluscan.mjs bench
# Results land in OUT/app/dist/results/ (bench/results' layout). Dawn needs a Vulkan loader (libvulkan.so.1) and the
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
cp node_modules/webgpu/dist/linux-x64/dawn.node "$out/app/node_modules/webgpu/dist/linux-x64/"
cp -r node_modules/@resvg/resvg-js node_modules/@resvg/resvg-js-linux-x64-gnu "$out/app/node_modules/@resvg/"
cp tools/*.py "$out/app/tools/"
echo '{"type":"module"}' > "$out/app/package.json"
if [ ! -f "$out/node.xz" ] || [ "$(node --version)" != "$(cat "$out/node.version" 2>/dev/null)" ]; then
  xz -T0 -6 -c "$(command -v node)" > "$out/node.xz.tmp" && mv "$out/node.xz.tmp" "$out/node.xz"
  node --version > "$out/node.version"
fi
du -sh "$out"
