#!/usr/bin/env python3
"""torchvision ViT forward time (eval mode, no grad), best of --runs after one warm-up, on the CPU or on CUDA
(fp32 with TF32 off, so the arithmetic is the same as ours; timed with CUDA synchronisation).
--device auto = cuda when torch sees a GPU, else cpu.
Prints one JSON line: {"config", "batch", "device", "threads", "seconds_per_image"}. Peer for bench/vit.ts."""
import argparse, json, time

import torch
import torchvision.models.vision_transformer as tvvit

p = argparse.ArgumentParser()
p.add_argument("--config", default="vit_b_16")
p.add_argument("--batch", type=int, default=1)
p.add_argument("--runs", type=int, default=3)
p.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
a = p.parse_args()
dev = "cuda" if a.device == "cuda" or (a.device == "auto" and torch.cuda.is_available()) else "cpu"
if dev == "cuda":
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
sync = torch.cuda.synchronize if dev == "cuda" else (lambda: None)
torch.manual_seed(0)
model = getattr(tvvit, a.config)(num_classes=14).eval().to(dev)
x = torch.randn(a.batch, 3, model.image_size, model.image_size, device=dev)
with torch.no_grad():
    model(x)
    sync()
    best = float("inf")
    for _ in range(a.runs):
        t0 = time.perf_counter()
        model(x)
        sync()
        best = min(best, time.perf_counter() - t0)
name = f"CUDA fp32 ({torch.cuda.get_device_name()})" if dev == "cuda" else "CPU"
print(json.dumps({"config": a.config, "batch": a.batch, "device": name, "threads": torch.get_num_threads(), "seconds_per_image": best / a.batch}))
