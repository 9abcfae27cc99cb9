"""``python -m convbn_compat.tools.benefit``: does the pass still save what it exists to save?

The pass's pull request (pytorch#108757) measured ResNet-50, batch 64, 224x224, forward
and backward with BatchNorm in eval mode: 5.18 GB eager, 5.46 GB compiled, 2.88 GB
compiled with the pass. This module measures the same three ways to run a conv-BN network
in eval mode (all parameters trainable, as there), each in a process of its own:

- ``eager``: no compile;
- ``off``: ``torch.compile``, the pass's flag off;
- ``on``: ``torch.compile``, the flag on.

On a GPU: peak CUDA memory of one step (``max_memory_allocated``, as the pull request
read it) and the median step time. On the CPU there is no allocator to ask, so the
process's own pages are read: with glibc's mmap threshold fixed at 64 KiB every tensor
is its own mapping, returned on free, so the resident set follows the live tensors. The
peak (``VmHWM``, reset through ``/proc/self/clear_refs``) over one step, and what the
forward leaves resident for the backward, both above the resident set before the step.

    python -m convbn_compat.tools.benefit --device cpu      # the small network, 2 cores: ~3 min
    python -m convbn_compat.tools.benefit --device cuda     # ResNet-50, batch 64, 224x224
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..core import results
from ..core.cells import DEVICES

__all__ = ["CONFIGS", "PR_FIGURES_GB", "main", "measure"]

CONFIGS = ("eager", "off", "on")
PR_FIGURES_GB = {"eager": 5.18, "off": 5.46, "on": 2.88}
"""pytorch#108757's ResNet-50 figures (batch 64, 224x224, forward and backward, eval)."""
RECORD = "BENEFIT-RECORD: "
MMAP_THRESHOLD = "65536"

MODELS = {
    # name: (batch, image size, measured steps)
    "small": (8, 56, 5),
    "resnet50": (64, 224, 20),
}


def _small_net():
    """Six Conv-BN-ReLU blocks at 32 channels, 56x56: ResNet's shapes, CPU-sized."""
    from torch import nn

    layers = [nn.Conv2d(3, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU()]
    for _ in range(5):
        layers += [nn.Conv2d(32, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU()]
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(32, 10))


def _resnet50():
    """torchvision's ResNet-50 (v1.5, stride in the 3x3), written out: no download."""
    from torch import nn

    class Bottleneck(nn.Module):
        def __init__(self, cin, width, stride):
            super().__init__()
            cout = width * 4
            self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU(inplace=True)
            self.down = None
            if stride != 1 or cin != cout:
                self.down = nn.Sequential(
                    nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout)
                )

        def forward(self, x):
            identity = x if self.down is None else self.down(x)
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + identity)

    layers = [
        nn.Conv2d(3, 64, 7, 2, 3, bias=False),
        nn.BatchNorm2d(64),
        nn.ReLU(inplace=True),
        nn.MaxPool2d(3, 2, 1),
    ]
    cin = 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for i in range(blocks):
            layers.append(Bottleneck(cin, width, stride if i == 0 else 1))
            cin = width * 4
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(2048, 1000)]
    return nn.Sequential(*layers)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"/proc/self/status has no {field}")


def _reset_peak_rss() -> None:
    Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to the current VmRSS


def _memory_cuda(run, model, x) -> dict:
    """Peak CUDA memory of one step, as pytorch#108757 read it, and what the forward
    leaves allocated for the backward."""
    import torch

    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    base = torch.cuda.memory_allocated()
    out = run(x)
    held = torch.cuda.memory_allocated() - base
    out.sum().backward()
    torch.cuda.synchronize()
    model.zero_grad(set_to_none=True)
    return {
        "peak_bytes": torch.cuda.max_memory_allocated(),
        "peak_step_bytes": torch.cuda.max_memory_allocated() - base,
        "held_for_backward_bytes": held,
    }


def _memory_cpu(run, model, x) -> dict:
    """The resident set's peak over one step, and what the forward leaves resident,
    both above the level before the step."""
    _reset_peak_rss()
    base = _status_kb("VmRSS")
    out = run(x)
    held = _status_kb("VmRSS") - base
    out.sum().backward()
    peak = _status_kb("VmHWM") - base
    model.zero_grad(set_to_none=True)
    return {"peak_step_bytes": peak * 1024, "held_for_backward_bytes": held * 1024}


def _step_times(step, sync, steps: int) -> dict:
    times = []
    for _ in range(steps):
        sync()
        t = time.perf_counter()
        step()
        sync()
        times.append(time.perf_counter() - t)
    return {
        "step_s": round(statistics.median(times), 4),
        "step_s_all": [round(t, 4) for t in times],
    }


def measure(config: str, model_name: str, device: str) -> dict:
    """One configuration, in this process: compile, warm up, then measure."""
    import torch

    from ..shim import inductor

    torch.manual_seed(0)
    batch, size, steps = MODELS[model_name]
    model = (_small_net() if model_name == "small" else _resnet50()).to(device).eval()
    x = torch.randn(batch, 3, size, size, device=device)
    cuda = device == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    with contextlib.ExitStack() as stack:
        fires = None
        run = model
        if config != "eager":
            stack.enter_context(inductor.pass_enabled(config == "on"))
            inductor.reset_compiler()
            run = torch.compile(model)
            fires = stack.enter_context(inductor.count_fires())

        def step():
            run(x).sum().backward()
            model.zero_grad(set_to_none=True)

        started = time.perf_counter()
        step()  # compiles
        compile_s = time.perf_counter() - started
        step()
        sync()
        record = {"config": config, "compile_s": round(compile_s, 2)}
        gc.collect()
        record.update((_memory_cuda if cuda else _memory_cpu)(run, model, x))
        record.update(_step_times(step, sync, steps))
    if fires is not None:  # its count is final once its block has closed
        record["fire_count"] = fires.counter
    return record


def _child(config: str, model_name: str, device: str) -> dict:
    with tempfile.TemporaryDirectory(prefix="convbn-benefit-") as cache:
        env = {
            **os.environ,
            "TORCHINDUCTOR_CACHE_DIR": cache,
            "MALLOC_MMAP_THRESHOLD_": MMAP_THRESHOLD,
        }
        cmd = [sys.executable, "-m", __spec__.name, "--one", config]
        cmd += ["--model", model_name, "--device", device]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith(RECORD):
            return json.loads(line[len(RECORD) :])
    tail = " | ".join((proc.stderr or proc.stdout).strip().splitlines()[-3:])
    return {"config": config, "error": f"exit {proc.returncode}: {tail}"}


def summarise(configs: dict[str, dict], key: str) -> dict:
    """What the pass saves: the flag-on run against the flag-off one, and eager."""
    on, off, eager = configs.get("on", {}), configs.get("off", {}), configs.get("eager", {})
    out: dict = {}
    if key in on and key in off and off[key]:
        out["memory_saved_vs_off"] = round(1 - on[key] / off[key], 4)
    if key in on and key in eager and eager[key]:
        out["memory_saved_vs_eager"] = round(1 - on[key] / eager[key], 4)
    if "step_s" in on and "step_s" in off:
        out["step_time_on_over_off"] = round(on["step_s"] / off["step_s"], 3)
    if "step_s" in on and "step_s" in eager:
        out["step_time_on_over_eager"] = round(on["step_s"] / eager["step_s"], 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m convbn_compat.tools.benefit",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--device", default="cpu", choices=DEVICES)
    parser.add_argument("--model", choices=tuple(MODELS), help="default: small on the CPU, "
                        "resnet50 on the GPU")  # fmt: skip
    parser.add_argument("--out", type=Path, help="results file (default: <results>/<run>.json)")
    results.add_run_options(parser.add_argument)
    parser.add_argument("--one", choices=CONFIGS, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    model_name = args.model or ("resnet50" if args.device == "cuda" else "small")
    if args.one:
        print(RECORD + json.dumps(measure(args.one, model_name, args.device)), flush=True)
        return 0

    run = results.tool_run(args, "benefit")
    out = run.path
    out.parent.mkdir(parents=True, exist_ok=True)
    writer = results.ResultsWriter(out, run.header("benefit"), kind="benefit")
    batch, size, steps = MODELS[model_name]
    section = {
        "model": model_name,
        "device": args.device,
        "input": [batch, 3, size, size],
        "steps": steps,
        "method": (
            "peak CUDA memory (max_memory_allocated) of one forward+backward step"
            if args.device == "cuda"
            else "resident set (VmRSS, VmHWM) above the pre-step level, glibc mmap "
            f"threshold {MMAP_THRESHOLD} bytes"
        ),
        "configs": {},
    }
    if model_name == "resnet50":
        section["pr_figures_gb"] = PR_FIGURES_GB

    def flush() -> None:
        writer.doc.benefit = results.BenefitSection.from_json(section)
        writer.flush()

    flush()
    complete = False
    try:
        for config in CONFIGS:
            record = _child(config, model_name, args.device)
            section["configs"][config] = record
            flush()
            print(json.dumps(record), flush=True)
        key = "peak_bytes" if args.device == "cuda" else "peak_step_bytes"
        section["summary"] = summarise(section["configs"], key)
        section["summary"]["held_for_backward_saved_vs_off"] = summarise(
            section["configs"], "held_for_backward_bytes"
        ).get("memory_saved_vs_off")
        # Complete: every configuration ran. One that failed carries its error (2.7.1's
        # flag-off compile of the CPU net dies in Inductor's C++ codegen, say).
        complete = True
    finally:
        failed = any("error" in r for r in section["configs"].values())
        writer.doc.benefit = results.BenefitSection.from_json(section)
        writer.finish(complete, 1 if failed or not complete else 0)
    print(f"wrote {out}: {json.dumps(section.get('summary'))}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(results.tool_main(main))
