"""The report two throughput benches share: a pipeline against a bare batched forward over the same inputs."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterable

import torch


def batched_seconds(
    tensors: Iterable[torch.Tensor], batch_size: int, forward: Callable[[torch.Tensor], object]
) -> float:
    """Seconds of ``forward`` alone over Tensor[1, 3, H, W] inputs grouped by size into batches (as the benched
    pipelines group them); the grouping and concatenation happen before the clock starts."""
    buckets: dict[tuple[int, ...], list[torch.Tensor]] = {}
    for x in tensors:
        buckets.setdefault(tuple(x.shape[-2:]), []).append(x)
    batches = [torch.cat(ts[i : i + batch_size]) for ts in buckets.values() for i in range(0, len(ts), batch_size)]
    start = time.perf_counter()
    with torch.inference_mode():
        for x in batches:
            forward(x)
    return time.perf_counter() - start


def report_ratio(title: str, setup: str, unit: str, n: int, timed: tuple[str, float, str], bare_s: float) -> float:
    """Print both rates and their ratio (bare time / pipeline time; the goal is >= 0.8) and return the ratio.

    Args:
        title: what is compared, e.g. "views bench vs bare forward (efficientnet_lite0".
        setup: the run's details after the machine, e.g. "96 photos from ...; best of 3".
        unit: what n counts ("photos", "images").
        n: how many were processed in each timed pass.
        timed: (the pipeline's label, its best time in seconds, what its time includes).
        bare_s: the bare forward passes' best time in seconds.
    """
    label, timed_s, includes = timed
    print(f"{title}; {platform.machine()}, {torch.get_num_threads()} torch threads, {setup})")
    print(f"  {label + ':':<13}{n / timed_s:6.2f} {unit}/s  ({timed_s:.2f} s, {includes})")
    print(f"  {'bare passes:':<13}{n / bare_s:6.2f} {unit}/s  ({bare_s:.2f} s, tensors ready)")
    ratio = bare_s / timed_s
    print(f"  ratio {ratio:.2f}  (goal >= 0.8: {'met' if ratio >= 0.8 else 'MISSED'})")  # bench/run_all.py reads it
    return ratio
