"""Training and feature-extraction throughput (images/s) per precision, layout and batch size.

A training step is the stage-1 step on random images: forward in train mode,
label-smoothed CE + soft triplet, backward, Adam step (BatchNorm groups of
``--bn-group-size`` as in training). Extraction is the eval-mode forward under
``no_grad``. On CUDA the peak GPU memory of each configuration is reported.

    python benchmarks/throughput.py --device cuda --out throughput.json
    python benchmarks/throughput.py --arch resnet18 --height 64 --width 32 --device cpu \
        --batch-sizes 8 --iters 2 --warmup 1          # a tiny CPU check
"""
from __future__ import annotations

import argparse
import itertools
import json
import time
from typing import Optional

import torch

from dualref.utils.amp import autocast_context
from dualref.losses.softmax import CrossEntropyLabelSmooth
from dualref.losses.triplet import SoftTripletLoss
from dualref.models import create
from dualref.models.batchnorm import convert_batchnorm
from dualref.trainers.base import _grad_scaler
from dualref.utils.device import resolve_device


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step, device: torch.device, iters: int, warmup: int) -> float:
    """Seconds per call of ``step`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        step()
    _sync(device)
    tic = time.perf_counter()
    for _ in range(iters):
        step()
    _sync(device)
    return (time.perf_counter() - tic) / iters


def measure(arch: str, height: int, width: int, batch_size: int, amp: Optional[str],
            channels_last: bool, device: torch.device, iters: int, warmup: int,
            num_instances: int = 4, bn_group_size: int = 16) -> dict:
    """Images/s of one training step and one extraction batch for one configuration."""
    torch.manual_seed(0)
    num_ids = max(batch_size // num_instances, 1)
    model = convert_batchnorm(create(arch, pretrained=False, num_classes=num_ids), bn_group_size)
    model = model.to(device)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    model = model.to(memory_format=memory_format)
    images = torch.randn(batch_size, 3, height, width, device=device)
    images = images.contiguous(memory_format=memory_format)
    labels = torch.arange(batch_size, device=device) // num_instances % num_ids
    ce, tri = CrossEntropyLabelSmooth(num_ids), SoftTripletLoss()
    optimizer = torch.optim.Adam(model.parameters(), lr=3.5e-4)
    scaler = _grad_scaler(device) if amp == "fp16" and device.type == "cuda" else None

    def train_step() -> None:
        model.train()
        with autocast_context(device, amp):
            features, logits = model(images)
            loss = ce(logits.float(), labels) + tri(features.float(), labels)
        optimizer.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
        else:
            loss.backward()
            optimizer.step()

    @torch.no_grad()
    def extract_step() -> None:
        model.eval()
        with autocast_context(device, amp):
            model(images)

    record = {"arch": arch, "height": height, "width": width, "batch_size": batch_size,
              "amp": amp or "fp32", "channels_last": channels_last, "device": str(device)}
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    record["train_images_per_s"] = batch_size / _timed(train_step, device, iters, warmup)
    if device.type == "cuda":
        record["train_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
        torch.cuda.reset_peak_memory_stats(device)
    record["extract_images_per_s"] = batch_size / _timed(extract_step, device, iters, warmup)
    if device.type == "cuda":
        record["extract_peak_mib"] = torch.cuda.max_memory_allocated(device) / 2**20
    return record


def markdown(records: list) -> str:
    """The records as a Markdown table."""
    head = "| batch | precision | channels-last | train img/s | extract img/s | peak MiB (train) |"
    rows = [head, "|---|---|---|---|---|---|"]
    for r in records:
        if "error" in r:
            rows.append(f"| {r['batch_size']} | {r['amp']} | {r['channels_last']} | "
                        f"n/a ({r['error']}) | | |")
            continue
        peak = f"{r['train_peak_mib']:.0f}" if "train_peak_mib" in r else "-"
        rows.append(f"| {r['batch_size']} | {r['amp']} | {r['channels_last']} | "
                    f"{r['train_images_per_s']:.1f} | {r['extract_images_per_s']:.1f} | {peak} |")
    return "\n".join(rows)


def main(argv: Optional[list] = None) -> list:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-a", "--arch", default="resnet50")
    parser.add_argument("--height", type=int, default=256)
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[64, 128])
    parser.add_argument("--amp", nargs="+", default=["fp32", "bf16", "fp16"],
                        choices=["fp32", "bf16", "fp16"])
    parser.add_argument("--channels-last", nargs="+", default=["off", "on"], choices=["off", "on"])
    parser.add_argument("--bn-group-size", type=int, default=16)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--out", metavar="JSON", help="write the records to this file")
    args = parser.parse_args(argv)
    device = resolve_device(args.device)
    records = []
    for batch, amp, layout in itertools.product(args.batch_sizes, args.amp, args.channels_last):
        config = dict(arch=args.arch, height=args.height, width=args.width, batch_size=batch,
                      amp=None if amp == "fp32" else amp, channels_last=layout == "on")
        try:
            record = measure(**config, device=device, iters=args.iters, warmup=args.warmup,
                             bn_group_size=args.bn_group_size)
        except RuntimeError as err:  # e.g. a precision this device's autocast lacks
            record = {**config, "amp": amp, "device": str(device), "error": str(err).split("\n")[0]}
        records.append(record)
        print(json.dumps(record), flush=True)
    print(markdown(records))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(records, handle, indent=2)
    return records


if __name__ == "__main__":
    main()
