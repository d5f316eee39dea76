"""benchmarks/gpu_check.py starts from the carried prebuilt wheel when its sources match this
checkout's (CPU: the plan only; --dry-run stays side-effect free)."""

from __future__ import annotations

import json

import pytest
import torch

from test_bench_cuda_smoke import load


@pytest.fixture
def gpu_check(tmp_path, monkeypatch):
    module = load("gpu_check")
    monkeypatch.setattr(module, "WHEEL_DIR", tmp_path)
    return module


def dry_run(gpu_check, capsys, *args) -> str:
    assert gpu_check.main(["--dry-run", *args]) == 0
    return capsys.readouterr().out


def carry_wheel(gpu_check, tmp_path, sources: str) -> str:
    name = "strainer_fast-0.1.0-cp311-cp311-linux_x86_64.whl"
    (tmp_path / name).write_bytes(b"not read by the plan")
    (tmp_path / gpu_check.WHEEL_INFO).write_text(json.dumps(
        {"wheel": name, "sources": sources, "archs": "80;90a-real", "torch": "2.13.0"}))
    return name


def test_without_a_wheel_it_builds_from_source(gpu_check, capsys, tmp_path):
    plan = dry_run(gpu_check, capsys)
    assert "build from source: no prebuilt wheel" in plan and "--make-wheel" in plan
    assert "install: at most 60 s (not run)" in plan and "build: at most 230 s\n" in plan
    assert list(tmp_path.iterdir()) == []  # the dry run wrote nothing


def test_a_matching_wheel_is_the_default_start(gpu_check, capsys, tmp_path):
    name = carry_wheel(gpu_check, tmp_path, gpu_check.source_digest())
    plan = dry_run(gpu_check, capsys)
    assert f"install the prebuilt {name}" in plan
    assert "build: at most 230 s (not run)" in plan and "cutlass: at most 60 s (not run)" in plan
    assert "build from source (--build)" in dry_run(gpu_check, capsys, "--build")


def test_a_wheel_of_other_sources_is_not_used(gpu_check, capsys, tmp_path):
    carry_wheel(gpu_check, tmp_path, "0" * 64)
    plan = dry_run(gpu_check, capsys)
    assert "build from source" in plan and "built from other sources" in plan


def test_the_digest_follows_the_compiled_sources(gpu_check):
    digest = gpu_check.source_digest()
    assert len(digest) == 64 and digest == gpu_check.source_digest()


@pytest.mark.skipif(torch.version.cuda is not None, reason="checks the CPU-torch refusal")
def test_make_wheel_needs_a_cuda_torch(gpu_check, capsys, tmp_path):
    assert gpu_check.main(["--make-wheel"]) == 2
    assert "CPU-only build" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []
