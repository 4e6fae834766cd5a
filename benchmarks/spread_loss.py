"""Time and peak memory of SpreadLoss forward+backward (B=64, d=2048, Market/MSMT-sized N).

Each configuration runs in its own process; the CPU peak is the Linux VmHWM
(reset just before the step) minus the RSS at that moment. ``--impl sort`` times a full-sort formulation in the
style of the authors' code (B x (knn+1) x N pair tensor) for comparison.

    python benchmarks/spread_loss.py                      # CPU, both sizes
    python benchmarks/spread_loss.py --device cuda --impl both
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch
import torch.nn.functional as F

from dualref.losses.spread import SpreadLoss


def sort_based_loss(module: SpreadLoss, inputs: torch.Tensor, indexes: torch.Tensor) -> torch.Tensor:
    """Spread-out loss by full sort and an explicit pair tensor (reference cost only)."""
    sim = inputs @ F.normalize(module.memory, dim=1).t()
    ranked = sim.sort(dim=1, descending=True).values
    positives = torch.cat((sim.gather(1, indexes[:, None]), ranked[:, : module.knn]), dim=1)
    negatives = ranked[:, module.knn : -1]
    pairs = torch.exp(negatives[:, None, :] - positives[:, :, None] + module.m)
    return torch.log1p(pairs.flatten(1).sum(dim=1)).mean()


def _status_kib(field: str) -> int:
    """A ``/proc/self/status`` memory field (VmRSS, VmHWM) in KiB."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def reset_peak(device: torch.device) -> int:
    """Reset the peak-memory counter; return the bytes in use now."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        return torch.cuda.memory_allocated(device)
    with open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")  # Linux: reset VmHWM (peak RSS) to the current RSS
    return _status_kib("VmRSS") * 1024


def peak_bytes(device: torch.device) -> int:
    """Peak RSS since the reset (CPU, Linux) or peak allocated bytes (CUDA)."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device)
    return _status_kib("VmHWM") * 1024


def measure(impl: str, batch: int, num: int, dim: int, device: torch.device, reps: int) -> dict:
    """Return seconds per forward+backward and the extra peak memory of the first one."""
    torch.manual_seed(0)
    module = SpreadLoss(dim, num).to(device)
    inputs = F.normalize(torch.randn(batch, dim, device=device), dim=1).requires_grad_(True)
    indexes = torch.randint(0, num, (batch,), device=device)
    step = (lambda: module(inputs, indexes)) if impl == "logsumexp" else (lambda: sort_based_loss(module, inputs, indexes))
    before = reset_peak(device)
    step().backward()  # first call: the memory gradient (N x d) is allocated here too
    extra = peak_bytes(device) - before
    times = []
    for _ in range(reps):
        module.memory.grad = None
        inputs.grad = None
        start = time.perf_counter()
        step().backward()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        times.append(time.perf_counter() - start)
    return {"impl": impl, "B": batch, "N": num, "d": dim, "device": str(device),
            "median_s": sorted(times)[len(times) // 2], "extra_peak_MiB": extra / 2**20}


def main() -> None:
    """Run every (impl, N) configuration in a child process and print a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--dim", type=int, default=2048)
    parser.add_argument("--num", type=int, nargs="+", default=[12936, 32621])
    parser.add_argument("--impl", choices=["logsumexp", "sort", "both"], default="logsumexp")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    parser.add_argument("--single", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.single:
        print(json.dumps(measure(args.impl, args.batch, args.num[0], args.dim, torch.device(args.device), args.reps)))
        return
    impls = ["logsumexp", "sort"] if args.impl == "both" else [args.impl]
    print(f"{'impl':>10} {'N':>7} {'device':>6} {'fwd+bwd s':>10} {'extra peak MiB':>15}")
    for impl in impls:
        for num in args.num:
            cmd = [sys.executable, __file__, "--single", "--impl", impl, "--num", str(num), "--batch",
                   str(args.batch), "--dim", str(args.dim), "--device", args.device,
                   "--reps", str(args.reps), "--threads", str(args.threads)]
            row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
            print(f"{impl:>10} {num:>7} {row['device']:>6} {row['median_s']:>10.3f} {row['extra_peak_MiB']:>15.1f}")


if __name__ == "__main__":
    main()
