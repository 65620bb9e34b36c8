#!/usr/bin/env python3
"""The fashion-mnist preset's recipe in PyTorch (torchvision VisionTransformer + torch.optim.AdamW), as a fast
oracle for how many epochs the recipe needs: our training arithmetic matches torch's (loss curves ~1e-7 relative),
so the accuracy a torch run reaches predicts ours. Prints one JSON line per epoch with val and test accuracy.

  /usr/bin/python3 tools/torch_fmnist_recipe.py --epochs 6 --warmup 200 [--threads 1]
"""
import argparse, gzip, json, math, time

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.models.vision_transformer import VisionTransformer

p = argparse.ArgumentParser()
p.add_argument("--dir", default="/usr/share/datasets/fashion-mnist")
p.add_argument("--epochs", type=int, default=15)
p.add_argument("--warmup", type=int, default=500)
p.add_argument("--batch", type=int, default=128)
p.add_argument("--lr", type=float, default=1e-3)
p.add_argument("--wd", type=float, default=0.05)
p.add_argument("--patch", type=int, default=7)
p.add_argument("--layers", type=int, default=4)
p.add_argument("--dim", type=int, default=64)
p.add_argument("--mlp", type=int, default=128)
p.add_argument("--heads", type=int, default=4)
p.add_argument("--seed", type=int, default=0)
p.add_argument("--threads", type=int, default=0)
p.add_argument("--augment", default="light", choices=["light", "none"])
p.add_argument("--device", default="cpu", help="cpu or cuda (a GPU runs the oracle in about a minute)")
p.add_argument("--smoothing", type=float, default=0.1)
a = p.parse_args()
if a.threads:
    torch.set_num_threads(a.threads)
torch.manual_seed(a.seed)
rng = np.random.default_rng(a.seed)


def idx(name):
    with gzip.open(f"{a.dir}/{name}", "rb") as f:
        b = f.read()
    nd = b[3]
    dims = [int.from_bytes(b[4 + 4 * i : 8 + 4 * i], "big") for i in range(nd)]
    return np.frombuffer(b, np.uint8, offset=4 + 4 * nd).reshape(dims)


xtr, ytr = idx("train-images-idx3-ubyte.gz"), idx("train-labels-idx1-ubyte.gz")
xte, yte = idx("t10k-images-idx3-ubyte.gz"), idx("t10k-labels-idx1-ubyte.gz")
perm = rng.permutation(len(xtr))
nval = len(xtr) // 10
xva, yva, xtr, ytr = xtr[perm[:nval]], ytr[perm[:nval]], xtr[perm[nval:]], ytr[perm[nval:]]
mean, std = xtr.mean() / 255, xtr.std() / 255


def tensor(x):
    t = (torch.from_numpy(x.astype(np.float32) / 255) - mean) / std
    return t[:, None].expand(-1, 3, -1, -1).contiguous().to(a.device)


def light(xb):
    """Horizontal flip (p = 0.5) and a shift of up to ±2 px (zero fill), per image, vectorised."""
    n = len(xb)
    flip = rng.random(n) < 0.5
    xb = np.where(flip[:, None, None], xb[:, :, ::-1], xb)
    dx, dy = rng.integers(-2, 3, size=n), rng.integers(-2, 3, size=n)
    P = np.pad(xb, ((0, 0), (2, 2), (2, 2)))
    rows = np.arange(28)[None, :] - dy[:, None] + 2  # out[y, x] = in[y - dy, x - dx]
    cols = np.arange(28)[None, :] - dx[:, None] + 2
    return P[np.arange(n)[:, None, None], rows[:, :, None], cols[:, None, :]]


m = VisionTransformer(image_size=28, patch_size=a.patch, num_layers=a.layers, num_heads=a.heads, hidden_dim=a.dim, mlp_dim=a.mlp, num_classes=10).to(a.device)
decay = [q for n, q in m.named_parameters() if q.ndim >= 2 and "pos_embedding" not in n and "class_token" not in n]
nodecay = [q for n, q in m.named_parameters() if not (q.ndim >= 2 and "pos_embedding" not in n and "class_token" not in n)]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.wd}, {"params": nodecay, "weight_decay": 0}], lr=a.lr)
steps_per_epoch = math.ceil(len(xtr) / a.batch)
total = steps_per_epoch * a.epochs


def lr_at(s):
    if s < a.warmup:
        return a.lr * (s + 1) / a.warmup
    return a.lr * 0.5 * (1 + math.cos(math.pi * (s - a.warmup) / max(1, total - a.warmup)))


def accuracy(x, y):
    m.eval()
    with torch.no_grad():
        c = sum((m(tensor(x[i : i + 1000])).argmax(1).cpu().numpy() == y[i : i + 1000]).sum() for i in range(0, len(x), 1000))
    m.train()
    return float(c) / len(x)


step, t0 = 0, time.time()
for ep in range(a.epochs):
    order = rng.permutation(len(xtr))
    for i in range(0, len(xtr), a.batch):
        b = order[i : i + a.batch]
        for g in opt.param_groups:
            g["lr"] = lr_at(step)
        loss = F.cross_entropy(m(tensor(light(xtr[b]) if a.augment == 'light' else xtr[b])), torch.from_numpy(ytr[b].astype(np.int64)).to(a.device), label_smoothing=a.smoothing)
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
        opt.step()
        step += 1
    print(json.dumps({"cfg": f"p{a.patch} d{a.dim} mlp{a.mlp} {a.augment} e{a.epochs}", "epoch": ep + 1, "loss": round(loss.item(), 4), "val": accuracy(xva, yva), "test": accuracy(xte, yte), "s": round(time.time() - t0)}), flush=True)
