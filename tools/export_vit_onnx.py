#!/usr/bin/env python3
"""Exports torchvision's ViT (random weights, seeded, num_classes 14: the config of bench/vit.ts) to ONNX
(opset 14) for the ONNX Runtime peer (bench/ortPeer.ts). Generated locally, never downloaded.
Writes <out> (via a temp file, then rename) and <out minus .onnx>.ref.json: torchvision's logits for the
deterministic input x[i] = sin(0.37 * i) (flat NCHW, batch 1), so the peer can check ORT's logits agree.
Prints one JSON line: {"path", "ref", "seconds"}. Skips the export when <out> exists (unless --force)."""
import argparse, inspect, json, math, os, time

import torch
import torchvision.models.vision_transformer as tvvit

p = argparse.ArgumentParser()
p.add_argument("--config", default="vit_b_16")
p.add_argument("--num-classes", type=int, default=14)
p.add_argument("--out", default=None, help="default: ~/.cache/celluscan/<config>_<classes>.onnx")
p.add_argument("--force", action="store_true")
a = p.parse_args()

out = a.out or os.path.join(os.path.expanduser("~/.cache/celluscan"), f"{a.config}_{a.num_classes}.onnx")
ref = out[: -len(".onnx")] + ".ref.json" if out.endswith(".onnx") else out + ".ref.json"
t0 = time.perf_counter()
if a.force or not (os.path.exists(out) and os.path.exists(ref)):
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    torch.manual_seed(0)
    model = getattr(tvvit, a.config)(num_classes=a.num_classes).eval()
    # torchvision zero-initialises the classification head, so every logit would be 0 and the ORT check
    # below would prove nothing: give the head seeded random weights too (timing is unaffected).
    with torch.no_grad():
        torch.nn.init.normal_(model.heads.head.weight, std=0.02)
        torch.nn.init.normal_(model.heads.head.bias, std=0.02)
    S = model.image_size
    n = 3 * S * S
    x = torch.tensor([math.sin(0.37 * i) for i in range(n)], dtype=torch.float32).reshape(1, 3, S, S)
    with torch.no_grad():
        logits = model(x)[0].tolist()
    tmp = f"{out}.tmp-{os.getpid()}"
    try:
        # With grad enabled: under no_grad, eval-mode nn.MultiheadAttention takes its fused fast path
        # (aten::_native_multi_head_attention), which has no ONNX export.
        # The TorchScript exporter: torch >= 2.9 defaults to the dynamo one, which needs the onnx and onnxscript
        # packages (not on every machine with torch, e.g. a borrowed GPU machine) and takes dynamic_shapes instead.
        extra = {"dynamo": False} if "dynamo" in inspect.signature(torch.onnx.export).parameters else {}
        torch.onnx.export(
            model, torch.randn(1, 3, S, S), tmp, opset_version=14,
            input_names=["input"], output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, **extra,
        )
        os.replace(tmp, out)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    tmpr = f"{ref}.tmp-{os.getpid()}"
    with open(tmpr, "w") as f:
        json.dump({"config": a.config, "num_classes": a.num_classes, "image_size": S, "seed": 0,
                   "input": "x[i] = sin(0.37 * i), flat NCHW, batch 1", "logits": logits}, f)
    os.replace(tmpr, ref)
print(json.dumps({"path": out, "ref": ref, "seconds": round(time.perf_counter() - t0, 2)}))
