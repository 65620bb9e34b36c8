#!/usr/bin/env python3
"""torchvision ViT forward time on the CPU (eval mode, no grad), best of --runs after one warm-up.
Prints one JSON line: {"config", "batch", "threads", "seconds_per_image"}. Peer for bench/vit.ts."""
import argparse, json, time

import torch
import torchvision.models.vision_transformer as tvvit

p = argparse.ArgumentParser()
p.add_argument("--config", default="vit_b_16")
p.add_argument("--batch", type=int, default=1)
p.add_argument("--runs", type=int, default=3)
a = p.parse_args()
torch.manual_seed(0)
model = getattr(tvvit, a.config)(num_classes=14).eval()
x = torch.randn(a.batch, 3, model.image_size, model.image_size)
with torch.no_grad():
    model(x)
    best = float("inf")
    for _ in range(a.runs):
        t0 = time.perf_counter()
        model(x)
        best = min(best, time.perf_counter() - t0)
print(json.dumps({"config": a.config, "batch": a.batch, "threads": torch.get_num_threads(), "seconds_per_image": best / a.batch}))
