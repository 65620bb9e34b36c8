#!/usr/bin/env bash
# Runs on a borrowed GPU machine (see README "Benchmarks on a real GPU"): the folder made by
# scripts/pack-node-bundle.sh travels as .devpack, a Vulkan loader as .gl/*.deb. Writes everything into $OUT/out.tgz:
#   smi.txt, info.json, selfcheck.json, parity.json (vit_b_16 logits vs torchvision on the GPU's own torch, both
#   attention paths), bench.log and the results (results/<adapter>.{json,md,png}); with PROFILE=1 also
#   profile_vit_b_16_{forward,train}.txt; vit_matmul_ab.txt (the forward per matmul choice, before any tune);
#   tune.txt and the tuning cache files (`celluscan tune` for vit_b_16 at batch 32,
#   or TUNE_MODEL / TUNE_BATCH; TUNE=0 skips it); BENCHES=none
#   skips the suite.
# Each step has its own time limit, so one that hangs cannot take the rest with it.
set -uo pipefail
# The device tool brings back at most 8 files from $OUT, and nothing a call's time limit cut off before it was copied:
# every output is written under a working $OUT (/tmp/device-bench-out), and the tool's $OUT (kept as FINAL_OUT) gets
# out.tgz, re-packed (atomically) after each step and every 20 s during the suite: a run stopped at any point returns
# what it had.
FINAL_OUT=${OUT:-/tmp/out}; mkdir -p "$FINAL_OUT"
OUT=/tmp/device-bench-out; rm -rf "$OUT"; mkdir -p "$OUT/results"
snap() { tar -czf "$FINAL_OUT/out.tgz.tmp" -C "$OUT" . 2>/dev/null && mv "$FINAL_OUT/out.tgz.tmp" "$FINAL_OUT/out.tgz"; }
trap snap EXIT
# DEADLINE=<s>: the whole script should end within this many seconds of its start (a call's timeout_s less a
# margin); the suite, the last step, gets what is left unless BENCH_TIMEOUT says otherwise.
started=$SECONDS
root=$(pwd)
[ "${NO_GL:-0}" = 1 ] || { for f in .gl/*.deb; do dpkg -x "$f" /; done; ldconfig; }
icd=/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json
[ -f "$icd" ] && ! ls /usr/share/vulkan/icd.d/*nvidia* >/dev/null 2>&1 && export VK_DRIVER_FILES=$icd
xz -dc .devpack/node.xz > /tmp/node && chmod +x /tmp/node
# The native libraries travel compressed (scripts/pack-node-bundle.sh): unpack each beside its .xz.
find .devpack/app -name '*.xz' | while read -r f; do xz -dc "$f" > "${f%.xz}.tmp" && mv "${f%.xz}.tmp" "${f%.xz}"; done
export XDG_RUNTIME_DIR=/tmp CELLUSCAN_PYTHON=$(command -v python3)
# the pack's font: the machine may have none, and the charts' labels would be blank
export CELLUSCAN_FONT_DIRS=$root/.devpack/app/fonts
# The tuning cache in the working tree (git-ignored, not carried): it survives between calls on a warm machine. One
# call can do it all within the device tool's 10 minutes (the ninth session's, on the H200: 294 s), e.g.
#   DEADLINE=530 PROFILE=1 PROFILE_WHAT=forward SKIP_PARITY=1 BENCHES="train attention matmul vit softmax layernorm gelu" \
#     bash scripts/device-bench.sh                                  (timeout_s 590: info, selfcheck, the vit matmul A/B,
#                                                                     tune, the forward profile, then the suite in what
#                                                                     is left; the benches most wanted first)
# or two: PROFILE=1 SKIP_PARITY=1 BENCHES=none …, then TUNE=0 SKIP_PARITY=1 … (the suite, with the tuned choices).
export XDG_CACHE_HOME=${XDG_CACHE_HOME:-$root/.devcache}
cd .devpack/app
cs() { /tmp/node dist/celluscan.mjs "$@"; }
nvidia-smi --query-gpu=name,driver_version,clocks.max.sm,clocks.max.mem,memory.total --format=csv > "$OUT/smi.txt" 2>&1
timeout 60 /tmp/node dist/celluscan.mjs info --json > "$OUT/info.json" 2> /tmp/info.err || { cat /tmp/info.err; exit 1; }
timeout ${SELFCHECK_TIMEOUT:-90} /tmp/node dist/celluscan.mjs selfcheck --json > "$OUT/selfcheck.json" 2>&1; echo "selfcheck rc=$?"; snap
# Parity on the GPU: torchvision vit_b_16 with random weights (the GPU machine's torch, on its CPU) vs ours.
if [ "${SKIP_PARITY:-0}" != 1 ]; then
  P=/tmp/par; mkdir -p $P
  timeout 120 python3 tools/torch_parity.py make --out $P --config vit_b_16 > $P/make.log 2>&1 &&
  read -r mean std < <(python3 -c "import json;d=json.load(open('$P/vit_b_16.json'));print(','.join(map(str,d['mean'])),','.join(map(str,d['std'])))") &&
  timeout 120 /tmp/node dist/celluscan.mjs convert $P/vit_b_16.pth $P/w.safetensors --mean "$mean" --std "$std" > $P/convert.log 2>&1 &&
  for a in fused explicit; do timeout 120 /tmp/node dist/celluscan.mjs predict --weights $P/w.safetensors --image $(python3 -c "import json;print(' '.join(json.load(open('$P/vit_b_16.json'))['images']))") --attention $a --json > $P/ours_$a.json 2>> $P/predict.err; done
  python3 - "$P" > "$OUT/parity.json" <<'PY'
import json, sys
P = sys.argv[1]
ref = json.load(open(f"{P}/vit_b_16.json"))
res = {}
for a in ("fused", "explicit"):
    try:
        ours = json.load(open(f"{P}/ours_{a}.json"))
        ours = ours if isinstance(ours, list) else [ours]
        res[a] = max(abs(x - y) for o, r in zip(ours, ref["logits"]) for x, y in zip(o["logits"], r))
    except Exception as e:
        res[a] = f"failed: {e}"
print(json.dumps({"config": "vit_b_16", "max_abs_logit_diff": res}))
PY
  cat "$OUT/parity.json"; tail -3 $P/predict.err 2>/dev/null; snap
fi
# Before the tune, with the default table in force: the vit_b_16 forward at batch 32 with the library's per-form
# choice (NVIDIA: x·Wᵀ through a plain-layout copy) against one variant for every product, alternated (VIT_AB=0
# skips it). The first answer to "was the forward's x·Wᵀ the 125 ms?".
if [ "${VIT_AB:-1}" = 1 ] && [ ! -f "$XDG_CACHE_HOME/celluscan/matmul-autotune.json" ]; then
  timeout ${VIT_AB_TIMEOUT:-90} /tmp/node dist/celluscan.mjs bench vit --batch 32 --runs 2 --matmul library,blocked-vec4,tiled-vec4 > "$OUT/vit_matmul_ab.txt" 2>&1; echo "vit matmul A/B rc=$?"; tail -5 "$OUT/vit_matmul_ab.txt"; snap
fi
# The attention path and matmul variant measured for vit_b_16 training and inference at batch 32 on this GPU
# (`celluscan tune`); cached, so the profile and the suite below run with them. TUNE=0 skips it.
if [ "${TUNE:-1}" = 1 ]; then
  timeout ${TUNE_TIMEOUT:-240} /tmp/node dist/celluscan.mjs tune --model ${TUNE_MODEL:-vit_b_16} --batch ${TUNE_BATCH:-32} > "$OUT/tune.txt" 2>&1; echo "tune rc=$?"; grep -v 'artificially reduced' "$OUT/tune.txt"
  cp "$XDG_CACHE_HOME"/celluscan/*-autotune.json "$OUT/" 2>/dev/null; snap
fi
# PROFILE=1: per-kernel GPU time of vit_b_16's forward and training step at batch 32 (where the time goes).
if [ "${PROFILE:-0}" = 1 ]; then
  for w in ${PROFILE_WHAT:-forward train}; do timeout ${PROFILE_TIMEOUT:-180} /tmp/node dist/celluscan.mjs bench profile --model vit_b_16 --what $w --batch 32 --top 40 > "$OUT/profile_vit_b_16_$w.txt" 2>&1; echo "profile $w rc=$?"; snap; done
fi
[ "${BENCHES:-all}" = none ] && exit 0
# Recorded into $OUT/results after every bench; results already in the pack (dist/results, e.g. the last run's
# nvidia-h200.json) are the base the new rows merge into.
cp dist/results/*.json "$OUT/results/" 2>/dev/null
( while sleep 20; do snap; done ) & snapper=$!
left=420; [ -n "${DEADLINE:-}" ] && left=$((DEADLINE - (SECONDS - started)))
[ "${BENCH_TIMEOUT:-$left}" -gt 10 ] || { echo "no time left for the suite (DEADLINE=$DEADLINE)"; exit 0; }
echo "suite: ${BENCH_TIMEOUT:-$left} s for ${BENCHES:-all}"
timeout ${BENCH_TIMEOUT:-$left} /tmp/node dist/celluscan.mjs bench ${BENCHES:-all} --results-dir "$OUT/results" 2>&1 | grep --line-buffered -v 'artificially reduced' | tee "$OUT/bench.log"
kill $snapper 2>/dev/null
ls -la "$OUT" "$OUT/results"
