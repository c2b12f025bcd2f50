#!/usr/bin/env python3
"""PyTorch reference for `defectscope bench`: the same networks, batches and crop sizes on the CPU.

Runs the training and inference cases of `defectscope bench` in PyTorch and prints the same rows
(median of repeats after one warm-up). With --defectscope BIN it also runs `BIN bench --json` on
those cases in the same session and prints both side by side with the ratio defectscope/PyTorch.

The networks are built layer for layer as defectscope's `model` module builds them:
  ConvBlock  = 3x3 conv (padding 1, bias) -> BatchNorm (eps 1e-5, momentum 0.1) -> LeakyReLU(0.03)
  Sniffer(c) = block(1,c) pool block(c,2c) block(2c,2c) pool block(2c,2c) block(2c,2c)
               up block(2c,c) up conv(c,1)                              (Maksov et al. 2019)
  U-Net(f)   = two blocks per level, filters f,2f,4f,8f, skips by concatenation,
               nearest-neighbour upsampling, conv(f,1) head             (AtomAI-style)
A training iteration is: forward, focal loss (gamma 2, alpha 0.75) + Dice loss, loss read back,
backward, Adam step (lr 2e-3). Its inputs are random crops of a fixed random image made before
timing: unlike defectscope's rows, PyTorch's include no augmentation.

Not part of CI. Set up once:  python3 -m venv /tmp/torchvenv && /tmp/torchvenv/bin/pip install torch
Run:  /tmp/torchvenv/bin/python bench/reference.py --defectscope target/debug/defectscope
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

WIDTH = 16
CROP = 256
TRAIN_CASES = [("sniffer", 8), ("sniffer", 32), ("unet", 8), ("unet", 32)]
INFER_CASES = [("sniffer", 512), ("sniffer", 1024), ("unet", 512), ("unet", 1024)]


class Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, padding=1)
        self.bn = nn.BatchNorm2d(cout, eps=1e-5, momentum=0.1)

    def forward(self, x):
        return F.leaky_relu(self.bn(self.conv(x)), 0.03)


def up(x):
    return F.interpolate(x, scale_factor=2, mode="nearest")


class Sniffer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.c1, self.c2, self.c3 = Block(1, c), Block(c, 2 * c), Block(2 * c, 2 * c)
        self.c4, self.c5, self.c6 = Block(2 * c, 2 * c), Block(2 * c, 2 * c), Block(2 * c, c)
        self.out = nn.Conv2d(c, 1, 3, padding=1)

    def forward(self, x):
        x = F.max_pool2d(self.c1(x), 2)
        x = F.max_pool2d(self.c3(self.c2(x)), 2)
        x = self.c5(self.c4(x))
        x = self.c6(up(x))
        return self.out(up(x))


class Unet(nn.Module):
    def __init__(self, f):
        super().__init__()

        def pair(a, b):
            return nn.Sequential(Block(a, b), Block(b, b))

        self.e1, self.e2, self.e3 = pair(1, f), pair(f, 2 * f), pair(2 * f, 4 * f)
        self.mid = pair(4 * f, 8 * f)
        self.d3 = pair(8 * f + 4 * f, 4 * f)
        self.d2 = pair(4 * f + 2 * f, 2 * f)
        self.d1 = pair(2 * f + f, f)
        self.out = nn.Conv2d(f, 1, 3, padding=1)

    def forward(self, x):
        s1 = self.e1(x)
        s2 = self.e2(F.max_pool2d(s1, 2))
        s3 = self.e3(F.max_pool2d(s2, 2))
        m = self.mid(F.max_pool2d(s3, 2))
        x = self.d3(torch.cat([up(m), s3], 1))
        x = self.d2(torch.cat([up(x), s2], 1))
        x = self.d1(torch.cat([up(x), s1], 1))
        return self.out(x)


def net(arch):
    return Sniffer(WIDTH) if arch == "sniffer" else Unet(WIDTH)


def loss_fn(logits, target, gamma=2.0, alpha=0.75, dice_weight=1.0):
    bce = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
    p = torch.sigmoid(logits)
    one_minus_pt = p + target - 2 * p * target
    alpha_t = target * (2 * alpha - 1) + (1 - alpha)
    pixel = (one_minus_pt.pow(gamma) * alpha_t * bce).mean()
    dice = (2 * (p * target).sum() + 1) / (p.sum() + target.sum() + 1)
    return pixel + dice_weight * (1 - dice)


def stats(samples):
    return statistics.median(samples), min(samples), max(samples)


def row(case, what, unit, samples):
    med, lo, hi = stats(samples)
    return {"case": case, "what": what, "device": f"cpu (PyTorch {torch.__version__})",
            "unit": unit, "median": med, "min": lo, "max": hi, "samples": len(samples)}


def train_case(arch, batch, repeats):
    torch.manual_seed(1)
    model = net(arch).train()
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    image = torch.randn(1, 1, 2 * CROP, 2 * CROP)
    mask = (torch.rand(1, 1, 2 * CROP, 2 * CROP) > 0.95).float()
    times = []
    for it in range(repeats + 1):
        t = time.perf_counter()
        xs, ys = [], []
        for _ in range(batch):
            i, j = torch.randint(0, CROP + 1, (2,)).tolist()
            xs.append(image[:, :, i:i + CROP, j:j + CROP])
            ys.append(mask[:, :, i:i + CROP, j:j + CROP])
        x, y = torch.cat(xs), torch.cat(ys)
        loss = loss_fn(model(x), y)
        loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it > 0:
            times.append(time.perf_counter() - t)
    name = "Sniffer" if arch == "sniffer" else "U-Net"
    return row(f"train-{arch}-b{batch}",
               f"training iteration, {name} (width {WIDTH}), batch {batch}, {CROP}² crops",
               "s/iteration", times)


def infer_case(arch, size, batch, repeats):
    torch.manual_seed(1)
    model = net(arch).eval()
    frames = torch.randn(batch, 1, size, size)
    times = []
    with torch.no_grad():
        for it in range(repeats + 1):
            t = time.perf_counter()
            torch.sigmoid(model(frames)).numpy()
            if it > 0:
                times.append((time.perf_counter() - t) * 1e3 / batch)
    name = "Sniffer" if arch == "sniffer" else "U-Net"
    return row(f"infer-{arch}-{size}",
               f"inference, {name} (width {WIDTH}), {size}² frames, {batch} per pass",
               "ms/frame", times)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("cases", nargs="*", help="case ids or prefixes (default: train and infer)")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--inference-batch", type=int, default=2)
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--defectscope", help="defectscope binary to run on the same cases")
    ap.add_argument("--device", default="auto", help="defectscope's --device")
    args = ap.parse_args()
    torch.set_num_threads(os.cpu_count() or 1)

    def wanted(case):
        return not args.cases or any(case.startswith(c) for c in args.cases)

    rows = []
    for arch, batch in TRAIN_CASES:
        if wanted(f"train-{arch}-b{batch}"):
            print(f"running train-{arch}-b{batch} …", file=sys.stderr)
            rows.append(train_case(arch, batch, args.repeats))
    for arch, size in INFER_CASES:
        if wanted(f"infer-{arch}-{size}"):
            print(f"running infer-{arch}-{size} …", file=sys.stderr)
            rows.append(infer_case(arch, size, args.inference_batch, args.repeats))

    ours = {}
    if args.defectscope:
        cmd = [args.defectscope, "bench", "--json", "--repeats", str(args.repeats),
               "--inference-batch", str(args.inference_batch), "--device", args.device]
        cmd += [r["case"] for r in rows]
        out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, text=True).stdout
        ours = {r["case"]: r for r in json.loads(out)["rows"]}

    machine = f"{os.cpu_count()} threads, PyTorch {torch.__version__}, {torch.get_num_threads()} threads used"
    if args.json:
        print(json.dumps({"machine": machine, "rows": rows, "defectscope": list(ours.values())},
                         indent=2))
        return
    print(f"# {machine}")
    print(f"{'case':<20} {'unit':<12} {'PyTorch':>9} {'defectscope':>12} {'ratio':>7}")
    for r in rows:
        o = ours.get(r["case"])
        ds = f"{o['median']:.4g}" if o else "–"
        ratio = f"{o['median'] / r['median']:.2f}" if o else "–"
        print(f"{r['case']:<20} {r['unit']:<12} {r['median']:>9.4g} {ds:>12} {ratio:>7}")


if __name__ == "__main__":
    main()
