"""The CPU model name (and SIMD level) that every benchmark records next to its numbers, and
``machine_info`` (all a JSON records about the machine)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

import torch

import strainer_fast

SIMD_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16")


def _cpuinfo(key: str) -> str | None:
    """The value of /proc/cpuinfo's first ``key`` line (None where missing)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith(key):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def cpu_name() -> str:
    """/proc/cpuinfo's model name (else platform.processor(), else 'unknown CPU')."""
    return _cpuinfo("model name") or platform.processor() or "unknown CPU"


def cpu_simd() -> list[str]:
    """Which of ``SIMD_FLAGS`` /proc/cpuinfo lists (the fused CPU kernels' speed depends on
    them: AVX-512 vs AVX2, native bf16); empty where /proc/cpuinfo is missing."""
    have = set((_cpuinfo("flags") or "").split())
    return [f for f in SIMD_FLAGS if f in have]


def machine_info() -> dict:
    """What a benchmark's JSON records about where it ran: CPU, SIMD level, torch threads,
    versions, the 1/5/15-minute load average when called."""
    return dict(cpu=cpu_name(), simd=cpu_simd(), threads=torch.get_num_threads(),
                python=platform.python_version(), torch=torch.__version__,
                strainer_fast=strainer_fast.__version__, load_average=list(os.getloadavg()))
