import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import strainer_fast
from strainer_fast._extension import compiled_kernel_available, import_error


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(autouse=True, scope="session")
def _private_cache(tmp_path_factory):
    """Encoders the commands cache go to a temporary folder, never the user's cache."""
    mp = pytest.MonkeyPatch()
    mp.setenv("STRAINER_FAST_CACHE", str(tmp_path_factory.mktemp("strainer_fast_cache")))
    yield
    mp.undo()


requires_cpu_kernel = pytest.mark.skipif(
    not compiled_kernel_available("cpu"),
    reason=f"compiled CPU kernel not built ({import_error()})",
)


def cli_command(*args: str) -> list[str]:
    """``python -m strainer_fast ARGS``."""
    return [sys.executable, "-m", "strainer_fast", *args]


def cli_env() -> dict[str, str]:
    """The current environment (read at call time, so test fixtures' settings apply), with
    the imported strainer_fast package first on the path."""
    return dict(os.environ, PYTHONPATH=str(Path(strainer_fast.__file__).resolve().parent.parent))


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """Runs the CLI in a subprocess; captured text output, 300 s limit."""
    return subprocess.run(cli_command(*args), env=cli_env(), capture_output=True, text=True,
                          timeout=300)


def count_host_reads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """From now on, ``[0]`` of the returned list counts host reads of tensors (item, tolist,
    bool, float, int, index): the pattern of the "no host sync per step" tests."""
    reads = [0]
    for name in ("item", "tolist", "__bool__", "__float__", "__int__", "__index__"):
        real = getattr(torch.Tensor, name)

        def spy(self, *a, _real=real, **kw):
            reads[0] += 1
            return _real(self, *a, **kw)

        monkeypatch.setattr(torch.Tensor, name, spy)
    return reads
