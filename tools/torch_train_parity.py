#!/usr/bin/env python3
"""Reference training run for test/trainParity.test.ts (torchvision VisionTransformer + torch.optim.AdamW).

Writes into --out:
  data/c0..c9/img_NNNN.png   the first --images Fashion-MNIST training images (28x28 gray PNGs, exactly image_size,
                             so no resampling); synthetic images when the dataset is not installed
  init.safetensors           the initial state_dict (torchvision names, F32) with celluscan_* metadata
  torch.json                 {"losses": [...per step...], "config", "mean", "std", "steps", "batch"}

Training: ImageFolder order (sorted classes, sorted files), no shuffle, the last partial batch kept, PIL
convert('RGB') (gray replicated) -> ToTensor -> Normalize(mean, std), model.train() with dropout 0, AdamW(lr, betas
(0.9, 0.999), eps 1e-8, weight_decay), constant LR, mean cross-entropy.
"""
import argparse
import gzip
import json
import math
import os
import struct

import numpy as np
import torch
import torchvision
from PIL import Image

FMNIST = "/usr/share/datasets/fashion-mnist"


def fashion_images(n):
    imgs = os.path.join(FMNIST, "train-images-idx3-ubyte.gz")
    labs = os.path.join(FMNIST, "train-labels-idx1-ubyte.gz")
    if not (os.path.exists(imgs) and os.path.exists(labs)):
        return None
    with gzip.open(imgs, "rb") as f:
        raw = f.read()
    _, count, rows, cols = struct.unpack(">IIII", raw[:16])
    x = np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, rows, cols)[:n]
    with gzip.open(labs, "rb") as f:
        rl = f.read()
    y = np.frombuffer(rl, dtype=np.uint8, offset=8)[:n]
    return x, y


def synthetic_images(n, size, classes, seed):
    g = np.random.default_rng(seed)
    y = np.arange(n) % classes
    x = np.zeros((n, size, size), dtype=np.uint8)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        c = y[i]
        base = ((xx * (c + 1) + yy * (classes - c)) % 256).astype(np.float64)
        x[i] = np.clip(base + g.normal(0, 30, (size, size)), 0, 255).astype(np.uint8)
    return x, y


def write_safetensors(path, tensors, metadata):
    header = {"__metadata__": metadata}
    offset = 0
    blobs = []
    for name in sorted(tensors):
        a = np.ascontiguousarray(tensors[name].astype("<f4"))
        b = a.tobytes()
        header[name] = {"dtype": "F32", "shape": list(a.shape), "data_offsets": [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    h = json.dumps(header).encode("utf8")
    h += b" " * ((8 - len(h) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--images", type=int, default=160)
    ap.add_argument("--steps", type=int, default=16)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--weight-decay", type=float, default=1e-2)
    ap.add_argument("--image-size", type=int, default=28)
    ap.add_argument("--patch-size", type=int, default=7)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--mlp", type=int, default=128)
    ap.add_argument("--label-smoothing", type=float, default=0.0)
    ap.add_argument("--clip-grad-norm", type=float, default=0.0)
    ap.add_argument("--no-decay-norm-bias", action="store_true")
    ap.add_argument("--warmup-steps", type=int, default=0)
    ap.add_argument("--cosine", action="store_true", help="cosine to 0 over --steps after the warmup (else constant)")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(2)
    classes = 10
    S = args.image_size
    data = fashion_images(args.images) if S == 28 else None
    source = "fashion-mnist"
    if data is None:
        data = synthetic_images(args.images, S, classes, args.seed)
        source = "synthetic"
    x, y = data
    root = os.path.join(args.out, "data")
    names = [f"c{c}" for c in range(classes)]
    for c in names:
        os.makedirs(os.path.join(root, c), exist_ok=True)
    for i in range(len(y)):
        Image.fromarray(x[i], "L").save(os.path.join(root, names[int(y[i])], f"img_{i:04d}.png"))

    config = dict(image_size=S, patch_size=args.patch_size, num_layers=args.layers, num_heads=args.heads,
                  hidden_dim=args.hidden, mlp_dim=args.mlp, num_classes=classes, dropout=0.0, attention_dropout=0.0)
    model = torchvision.models.vision_transformer.VisionTransformer(**config)
    # torchvision zeroes the head; draw it so every parameter matters from the first step.
    torch.nn.init.normal_(model.heads.head.weight, std=0.02)
    torch.nn.init.normal_(model.heads.head.bias, std=0.02)
    torch.nn.init.normal_(model.class_token, std=0.02)
    mean = [0.2860, 0.2860, 0.2860]
    std = [0.3530, 0.3530, 0.3530]
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    meta = {
        "format": "pt",
        "celluscan_config": json.dumps({**config, "representation_size": None}),
        "celluscan_labels": json.dumps(names),
        "celluscan_mean": json.dumps(mean),
        "celluscan_std": json.dumps(std),
    }
    write_safetensors(os.path.join(args.out, "init.safetensors"), sd, meta)

    tf = torchvision.transforms.Compose([torchvision.transforms.ToTensor(), torchvision.transforms.Normalize(mean, std)])
    ds = torchvision.datasets.ImageFolder(root, transform=tf)
    assert ds.classes == names
    loader = torch.utils.data.DataLoader(ds, batch_size=args.batch, shuffle=False, drop_last=False)
    if args.no_decay_norm_bias:
        named = list(model.named_parameters())
        nd = [p for n, p in named if p.ndim <= 1 or n.endswith(".bias")]
        de = [p for n, p in named if not (p.ndim <= 1 or n.endswith(".bias"))]
        groups = [{"params": de}, {"params": nd, "weight_decay": 0.0}]
    else:
        groups = model.parameters()
    opt = torch.optim.AdamW(groups, lr=args.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=args.weight_decay)
    w, total = args.warmup_steps, args.steps

    def factor(step):  # step: optimizer steps taken before this one (0-based), as src/train/trainer.ts lrAt
        if w > 0 and step < w:
            return (step + 1) / w
        if not args.cosine:
            return 1.0
        t = min(1.0, (step - w) / max(1, total - w))
        return 0.5 * (1 + math.cos(math.pi * t))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, factor)
    lossf = torch.nn.CrossEntropyLoss(label_smoothing=args.label_smoothing)
    model.train()
    losses = []
    while len(losses) < args.steps:
        for xb, yb in loader:
            opt.zero_grad()
            loss = lossf(model(xb), yb)
            loss.backward()
            if args.clip_grad_norm > 0:
                torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip_grad_norm)
            opt.step()
            sched.step()
            losses.append(loss.item())
            if len(losses) >= args.steps:
                break
    out = {"losses": losses, "config": config, "mean": mean, "std": std, "steps": args.steps, "batch": args.batch,
           "images": len(y), "source": source, "torch": torch.__version__, "torchvision": torchvision.__version__}
    with open(os.path.join(args.out, "torch.json"), "w") as f:
        json.dump(out, f)
    print(json.dumps({k: out[k] for k in ("steps", "batch", "images", "source", "torch", "torchvision")}))


if __name__ == "__main__":
    main()
