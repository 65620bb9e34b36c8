#!/usr/bin/env python3
"""Reference side of CelluScan's torchvision parity tests (test/parity.test.ts).

  make --out DIR --config NAME [--config NAME ...] [--seed S]
      For each config: a torchvision VisionTransformer with every parameter drawn at random (seeded; torchvision's
      own init leaves the head and class token at zero, which would hide mistakes), saved with
      torch.save(model.state_dict()) as DIR/NAME.pth; test images at exactly image_size x image_size (so nothing
      is resampled) as PNG: RGB noise, a smooth RGB pattern, an 8-bit gray image and an RGBA image with varying
      alpha (CelluScan replicates gray and drops alpha, and so does the reference input here); then torchvision's
      logits in eval mode. Writes DIR/NAME.json: {config, state_dict, images, mean, std, logits}.

  logits --weights FILE.safetensors --images A.png B.png ... [--out JSON]
      Reads a CelluScan safetensors file with numpy (Debian has no safetensors package), builds torchvision's
      VisionTransformer from its celluscan_config metadata, load_state_dict(strict=True), and prints (or writes)
      {"logits": [[...], ...]} for the images, normalised with the file's celluscan_mean/std.

  attention --weights FILE.safetensors --image A.png [--out JSON]
      As logits, then every layer's attention probabilities from torch.nn.MultiheadAttention itself
      (need_weights=True, average_attn_weights=False, on the input each layer's self_attention received in the
      forward: its ln_1 output): {"probs": [layer][head][query][key]}.

Configs: small48 (image 48, patch 16, 2 layers, 3 heads, hidden 48, mlp 100, 5 classes),
fmnist28 (image 28, patch 7, 2 layers, 4 heads, hidden 64, mlp 128, 10 classes), vit_b_16 (14 classes).
"""
import argparse
import json
import math
import os
import struct
import sys
import zlib

import numpy as np
import torch
from torchvision.models.vision_transformer import VisionTransformer

CONFIGS = {
    "small48": dict(image_size=48, patch_size=16, num_layers=2, num_heads=3, hidden_dim=48, mlp_dim=100, num_classes=5),
    "fmnist28": dict(image_size=28, patch_size=7, num_layers=2, num_heads=4, hidden_dim=64, mlp_dim=128, num_classes=10),
    "vit_b_16": dict(image_size=224, patch_size=16, num_layers=12, num_heads=12, hidden_dim=768, mlp_dim=3072, num_classes=14),
}
# Not ImageNet's, so a file that silently fell back to the defaults would fail the comparison.
MEAN = [0.5, 0.45, 0.4]
STD = [0.25, 0.2, 0.3]


def write_png(path, arr):
    """8-bit PNG (gray, RGB or RGBA by the array's channels), no filtering; written atomically."""
    arr = np.ascontiguousarray(arr, dtype=np.uint8)
    h, w = arr.shape[:2]
    c = 1 if arr.ndim == 2 else arr.shape[2]
    color = {1: 0, 3: 2, 4: 6}[c]
    raw = b"".join(b"\x00" + arr[y].tobytes() for y in range(h))

    def chunk(t, d):
        return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)

    data = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, color, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b"")
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
    os.replace(tmp, path)


def read_png_rgb(path):
    """Reads the PNGs write_png makes (8-bit, filter 0, any of gray/RGB/RGBA) → H x W x 3 uint8."""
    b = open(path, "rb").read()
    assert b[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
    pos, idat, w = 8, b"", 0
    while pos < len(b):
        (n,) = struct.unpack(">I", b[pos : pos + 4])
        t = b[pos + 4 : pos + 8]
        d = b[pos + 8 : pos + 8 + n]
        if t == b"IHDR":
            w, h, depth, color = struct.unpack(">IIBB", d[:10])
            assert depth == 8, "8-bit only"
        elif t == b"IDAT":
            idat += d
        pos += 12 + n
    c = {0: 1, 2: 3, 6: 4}[color]
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, 1 + w * c)
    assert (raw[:, 0] == 0).all(), "filter 0 only"
    px = raw[:, 1:].reshape(h, w, c)
    if c == 1:
        px = np.repeat(px, 3, axis=2)
    return px[:, :, :3]


def to_input(pixels, mean, std):
    """H x W x 3 uint8 list → [B, 3, H, W] float32, (pixel/255 - mean)/std per channel (torchvision's ToTensor+Normalize)."""
    x = torch.from_numpy(np.stack(pixels).astype(np.float32)).permute(0, 3, 1, 2) / 255.0
    m = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
    return (x - m) / s


def randomise(model, gen):
    """Every parameter random, with scales that keep activations O(1)."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("ln_1.weight") or name.endswith("ln_2.weight") or name == "encoder.ln.weight":
                p.copy_(1 + 0.1 * torch.randn(p.shape, generator=gen))
            elif p.dim() == 1:
                p.copy_(0.1 * torch.randn(p.shape, generator=gen))
            elif name in ("class_token", "encoder.pos_embedding"):
                p.copy_(0.5 * torch.randn(p.shape, generator=gen))
            else:
                fan_in = p[0].numel()
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(fan_in))


def make(out, name, seed):
    cfg = CONFIGS[name]
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    model = VisionTransformer(**cfg).eval()
    randomise(model, gen)
    sd_path = os.path.join(out, f"{name}.pth")
    torch.save(model.state_dict(), sd_path + ".tmp")
    os.replace(sd_path + ".tmp", sd_path)

    S = cfg["image_size"]
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:S, 0:S] / max(1, S - 1)
    smooth = np.stack([255 * xx, 255 * yy, 255 * (0.5 + 0.5 * np.sin(6 * xx + 3 * yy))], axis=2).round()
    gray = (255 * (0.5 + 0.5 * np.cos(5 * xx) * np.sin(4 * yy))).round()
    rgba = np.concatenate([rng.integers(0, 256, (S, S, 3)), rng.integers(0, 256, (S, S, 1))], axis=2)
    images = {
        "noise.png": rng.integers(0, 256, (S, S, 3)),
        "smooth.png": smooth,
        "gray.png": gray,
        "rgba.png": rgba,
    }
    paths, pixels = [], []
    for fname, arr in images.items():
        p = os.path.join(out, f"{name}_{fname}")
        write_png(p, arr)
        paths.append(p)
        pixels.append(read_png_rgb(p))
    with torch.no_grad():
        logits = model(to_input(pixels, MEAN, STD))
    res = {
        "config": cfg,
        "state_dict": sd_path,
        "images": paths,
        "mean": MEAN,
        "std": STD,
        "logits": logits.double().tolist(),
    }
    with open(os.path.join(out, f"{name}.json"), "w") as f:
        json.dump(res, f)
    return res


def read_safetensors(path):
    b = open(path, "rb").read()
    (n,) = struct.unpack("<Q", b[:8])
    header = json.loads(b[8 : 8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    dt = {"F32": np.float32, "F16": np.float16, "F64": np.float64}
    tensors = {}
    for k, v in header.items():
        s, e = v["data_offsets"]
        a = np.frombuffer(b[base + s : base + e], dtype=np.dtype(dt[v["dtype"]]).newbyteorder("<")).astype(np.float32)
        tensors[k] = torch.from_numpy(a.reshape(v["shape"]).copy())
    return tensors, meta


def model_from_safetensors(path):
    """torchvision's VisionTransformer from a CelluScan safetensors file (strict load), with its mean and std."""
    tensors, meta = read_safetensors(path)
    cfg = json.loads(meta["celluscan_config"])
    args = {k: cfg[k] for k in ("image_size", "patch_size", "num_layers", "num_heads", "hidden_dim", "mlp_dim", "num_classes")}
    model = VisionTransformer(**args).eval()
    model.load_state_dict(tensors, strict=True)
    mean = json.loads(meta.get("celluscan_mean", json.dumps([0.485, 0.456, 0.406])))
    std = json.loads(meta.get("celluscan_std", json.dumps([0.229, 0.224, 0.225])))
    return model, mean, std


def logits_from_safetensors(path, images):
    model, mean, std = model_from_safetensors(path)
    with torch.no_grad():
        logits = model(to_input([read_png_rgb(p) for p in images], mean, std))
    return {"logits": logits.double().tolist()}


def attention_from_safetensors(path, image):
    model, mean, std = model_from_safetensors(path)
    inputs = []
    # self_attention's input is ln_1's output (torchvision passes it by keyword, which torch 1.13's pre-hooks do not see)
    hooks = [layer.ln_1.register_forward_hook(lambda mod, a, out: inputs.append(out.detach())) for layer in model.encoder.layers]
    with torch.no_grad():
        model(to_input([read_png_rgb(image)], mean, std))
        for h in hooks:
            h.remove()
        probs = [layer.self_attention(x, x, x, need_weights=True, average_attn_weights=False)[1][0] for layer, x in zip(model.encoder.layers, inputs)]
    return {"probs": [p.double().tolist() for p in probs]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make")
    m.add_argument("--out", required=True)
    m.add_argument("--config", action="append", required=True, choices=sorted(CONFIGS))
    m.add_argument("--seed", type=int, default=1234)
    lg = sub.add_parser("logits")
    lg.add_argument("--weights", required=True)
    lg.add_argument("--images", nargs="+", required=True)
    lg.add_argument("--out")
    at = sub.add_parser("attention")
    at.add_argument("--weights", required=True)
    at.add_argument("--image", required=True)
    at.add_argument("--out")
    a = ap.parse_args()
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    if a.cmd == "make":
        os.makedirs(a.out, exist_ok=True)
        res = {name: make(a.out, name, a.seed + i) for i, name in enumerate(a.config)}
        print(json.dumps({name: os.path.join(a.out, f"{name}.json") for name in res}))
    else:
        r = logits_from_safetensors(a.weights, a.images) if a.cmd == "logits" else attention_from_safetensors(a.weights, a.image)
        if a.out:
            with open(a.out, "w") as f:
                json.dump(r, f)
        else:
            print(json.dumps(r))


if __name__ == "__main__":
    sys.exit(main())
