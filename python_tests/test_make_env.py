"""`make`'s environment choice and prerequisite checks (build_support/make_env.py, Makefile)."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("make_env", ROOT / "build_support" / "make_env.py")
make_env = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(make_env)

requires_make = pytest.mark.skipif(shutil.which("make") is None, reason="no make")


def test_active_environment_kinds(tmp_path):
    base = str(tmp_path / "base")
    os.makedirs(base)
    assert make_env.active_environment(str(tmp_path / "venv"), base, {}) == "virtual environment"
    assert make_env.active_environment(base, base, {}) is None
    # CONDA_PREFIX of another interpreter (make PYTHON=/usr/bin/python3 in a conda shell)
    assert make_env.active_environment(base, base, {"CONDA_PREFIX": str(tmp_path)}) is None
    assert make_env.active_environment(base, base, {"CONDA_PREFIX": base}) == "conda environment"
    os.makedirs(os.path.join(base, "conda-meta"))
    assert make_env.active_environment(base, base, {}) == "conda environment"


def test_missing_compiler_is_one_clear_error(tmp_path):
    with pytest.raises(SystemExit, match="no C\\+\\+17 compiler found .*apt-get install g\\+\\+"):
        make_env.check_compiler({"PATH": str(tmp_path)})
    with pytest.raises(SystemExit, match="looked for /nope/c\\+\\+ from CXX"):
        make_env.check_compiler({"CXX": "/nope/c++", "PATH": str(tmp_path)})
    fake = tmp_path / "oldcc"
    fake.write_text("#!/bin/sh\necho \"error: unrecognized option '-std=c++17'\" >&2\nexit 1\n")
    fake.chmod(0o755)
    with pytest.raises(SystemExit, match="oldcc does not compile C\\+\\+17 .*unrecognized"):
        make_env.check_compiler({"CXX": str(fake), "PATH": str(tmp_path)})


@pytest.mark.skipif(not any(shutil.which(c) for c in ("c++", "g++", "clang++")),
                    reason="no C++ compiler on PATH")
def test_real_compiler_passes():
    assert Path(make_env.check_compiler({"PATH": os.environ["PATH"]})).is_file()


def test_missing_ensurepip_says_which_package(tmp_path, monkeypatch):
    """Debian/Ubuntu without python3-venv: the fix is named and no half-made venv is left."""
    monkeypatch.setitem(sys.modules, "ensurepip", None)  # import ensurepip -> ImportError
    ver = f"{sys.version_info[0]}.{sys.version_info[1]}"
    with pytest.raises(SystemExit, match=f"has no ensurepip.*sudo apt-get install "
                                         f"python{ver}-venv"):
        make_env.create_venv(tmp_path / ".venv")
    assert not (tmp_path / ".venv").exists()


def test_old_python_is_refused():
    with pytest.raises(SystemExit, match="Python >= 3.10 is needed"):
        make_env.check_python((3, 9, 18))
    make_env.check_python((3, 10, 0))


def _dry_run(python: str, target: str = "test") -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "CONDA_PREFIX")}
    run = subprocess.run(["make", "-n", "-C", str(ROOT), target, f"PYTHON={python}"],
                         capture_output=True, text=True, env=env, check=True)
    return run.stdout


@requires_make
def test_make_inside_a_venv_installs_there(tmp_path):
    venv = tmp_path / "v"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    py = str(venv / "bin" / "python")
    out = _dry_run(py)
    assert f"{py} -m pip install -q --no-build-isolation --no-deps ." in out
    assert f"cd python_tests && {py} -m pytest -q" in out
    assert ".venv" not in out.replace("prepare .venv", "")  # no second environment
    line = subprocess.run([py, str(ROOT / "build_support" / "make_env.py"), "prepare", ".venv"],
                          capture_output=True, text=True, cwd=tmp_path)
    if line.returncode == 0:  # (fails only without a C++17 compiler)
        assert line.stdout.strip() == ("strainer_fast: installing into the active virtual "
                                       f"environment {venv}")
        assert not (tmp_path / ".venv").exists()


@requires_make
def test_make_outside_an_environment_uses_the_project_venv():
    base = getattr(sys, "_base_executable", sys.executable)
    probe = subprocess.run([base, "-c", "import sys; print(sys.prefix)"], capture_output=True,
                           text=True, check=True).stdout.strip()
    if make_env.active_environment(probe, probe, {}) is not None:
        pytest.skip(f"{base} is itself a conda environment's Python")
    out = _dry_run(base, "demo")
    venv_py = ROOT / ".venv" / "bin" / "python"
    assert f"{venv_py} -m pip install -q --no-build-isolation --no-deps ." in out
    assert f"{venv_py.parent}/strainer-fast demo --out strainer_fast_out/demo" in out
    assert "torch.__version__.startswith('2.13.0')" in out and '"torch==2.13.0"' in out


def test_readme_quotes_the_messages(tmp_path, monkeypatch):
    """The README's table of set-up errors quotes what make_env really prints."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    quoted = re.findall(r"^\| [^|]+ \| `(strainer_fast: [^`]+)` \|", readme, flags=re.M)
    assert len(quoted) == 3
    messages = []
    for call in (lambda: make_env.check_compiler({"PATH": str(tmp_path)}),
                 lambda: make_env.check_python((3, 9, 0))):
        with pytest.raises(SystemExit) as e:
            call()
        messages.append(str(e.value))
    monkeypatch.setitem(sys.modules, "ensurepip", None)
    monkeypatch.setattr(sys, "executable", "/usr/bin/python3")
    with pytest.raises(SystemExit) as e:
        make_env.create_venv(Path(".venv"))
    messages.append(str(e.value))
    for q in quoted:
        assert any(m.startswith(q) for m in messages), q


def test_make_docs_installs_the_docs_extra():
    """``make docs`` installs exactly pyproject's ``docs`` extra (DOCS_DEPS)."""
    tomllib = pytest.importorskip("tomllib")  # Python >= 3.11
    extra = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"]["docs"]
    line = next(ln for ln in (ROOT / "Makefile").read_text().splitlines()
                if ln.startswith("DOCS_DEPS :="))
    assert re.findall(r'"([^"]+)"', line.split("#")[0]) == extra
