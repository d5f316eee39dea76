"""Where ``make`` installs, and the prerequisites it checks before a long pip run.

    python3 build_support/make_env.py python VENV    # prints the interpreter the targets use
    python3 build_support/make_env.py prepare VENV   # checks, creates VENV if needed, says where

The targets install into the environment the interpreter runs in when it is one (a venv or
virtualenv, a conda environment); otherwise (a distribution's system Python, which PEP 668
marks externally managed, a pyenv or plain Python) into the project virtual environment
VENV, made on first use. Standard library only: it runs before anything is installed.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

__all__ = ["active_environment", "venv_python", "interpreter", "check_python", "check_compiler",
           "create_venv", "prepare", "main"]

MIN_PYTHON = (3, 10)  # pyproject.toml: requires-python
_CXX17_PROBE = "#include <optional>\nint main() { std::optional<int> x; return x ? 1 : 0; }\n"


class Problem(SystemExit):
    """A missing prerequisite: the message says what is missing and the fix (exit status 1)."""

    def __init__(self, message: str):
        super().__init__(f"strainer_fast: {message}")


def active_environment(prefix: str = sys.prefix, base_prefix: str = sys.base_prefix,
                       environ: dict[str, str] | None = None) -> str | None:
    """The kind of environment the interpreter with ``prefix`` runs in ("virtual environment",
    "conda environment"), or None for a base interpreter (system, pyenv, plain)."""
    environ = os.environ if environ is None else environ
    if os.path.realpath(prefix) != os.path.realpath(base_prefix):
        return "virtual environment"
    conda = environ.get("CONDA_PREFIX")
    if (conda and os.path.realpath(conda) == os.path.realpath(prefix)) \
            or os.path.isdir(os.path.join(prefix, "conda-meta")):
        return "conda environment"
    return None


def venv_python(venv: Path) -> Path:
    """The interpreter of the virtual environment ``venv`` (made or not), absolute."""
    return Path(venv).absolute() / "bin" / "python"


def interpreter(venv: Path) -> str:
    """The Python the make targets run: this one inside an environment, else ``venv``'s."""
    return sys.executable if active_environment() else str(venv_python(venv))


def check_python(version: tuple[int, ...] = tuple(sys.version_info)) -> None:
    """Raises Problem when ``version`` is older than the package needs."""
    if tuple(version[:2]) < MIN_PYTHON:
        need = ".".join(map(str, MIN_PYTHON))
        raise Problem(f"Python >= {need} is needed, {sys.executable} is "
                      f"{'.'.join(map(str, version[:3]))}. Fix: run make with a newer one, "
                      f"e.g. `make PYTHON=python3.11 ...`.")


def check_compiler(environ: dict[str, str] | None = None) -> str:
    """The C++ compiler CMake will pick (``$CXX``, else c++ / g++ / clang++ on PATH) after
    checking that it compiles C++17; raises Problem with the fix otherwise."""
    environ = os.environ if environ is None else environ
    fix = ("Fix: install one (Debian/Ubuntu: `sudo apt-get install g++`; Fedora: `sudo dnf "
           "install gcc-c++`; macOS: `xcode-select --install`) or set CXX=/path/to/c++.")
    wanted = environ.get("CXX", "").split()
    names = [wanted[0]] if wanted else ["c++", "g++", "clang++"]
    path = environ.get("PATH", os.defpath)
    found = next((p for p in (shutil.which(n, path=path) for n in names) if p), None)
    if found is None:
        raise Problem(f"no C++17 compiler found (looked for {', '.join(names)}"
                      f"{' from CXX' if wanted else ' on PATH'}); the extension is C++17. {fix}")
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "probe.cpp"
        src.write_text(_CXX17_PROBE)
        run = subprocess.run([found, *wanted[1:], "-std=c++17", "-fsyntax-only", str(src)],
                             capture_output=True, text=True)
    if run.returncode != 0:
        detail = (run.stderr or run.stdout).strip().splitlines()
        raise Problem(f"{found} does not compile C++17 (`{found} -std=c++17` said: "
                      f"{detail[0] if detail else f'exit status {run.returncode}'}). {fix}")
    return found


def create_venv(venv: Path) -> None:
    """Makes the virtual environment ``venv`` with pip in it; raises Problem (and leaves no
    half-made folder) when this Python cannot, e.g. Debian/Ubuntu without python3-venv."""
    ver = f"{sys.version_info[0]}.{sys.version_info[1]}"
    try:
        import ensurepip
        ensurepip.version()  # a namespace-package stub has no version()
    except (ImportError, AttributeError):
        raise Problem(
            f"cannot make the project virtual environment {venv}/: {sys.executable} has no "
            f"ensurepip (`python3 -m venv` fails with \"ensurepip is not available\"). Fix on "
            f"Debian/Ubuntu: `sudo apt-get install python{ver}-venv` (or python3-venv), then "
            f"re-run make; or run make inside a venv or conda environment of your own."
        ) from None
    run = subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True,
                         text=True)
    if run.returncode != 0:
        shutil.rmtree(venv, ignore_errors=True)
        detail = " ".join((run.stderr or run.stdout).split())
        raise Problem(f"`{sys.executable} -m venv {venv}` failed: {detail}")


def prepare(venv: Path) -> str:
    """Checks Python and the C++17 compiler, makes ``venv`` when it is needed and missing;
    returns the one line saying where the targets install."""
    check_python()
    check_compiler()
    kind = active_environment()
    if kind:
        return f"strainer_fast: installing into the active {kind} {sys.prefix}"
    py = venv_python(venv)
    made = ""
    if not (py.exists() and (py.parent / "pip").exists()):  # absent, or made without pip
        create_venv(venv)
        made = "made now; "
    return (f"strainer_fast: installing into the project virtual environment {venv}/ ({made}"
            f"{sys.executable} is in no venv or conda environment)")


def main(argv: list[str] | None = None) -> int:
    """``python VENV`` prints the interpreter; ``prepare VENV`` checks and prints where."""
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] not in ("python", "prepare"):
        print(__doc__.strip().splitlines()[2], file=sys.stderr)
        return 2
    venv = Path(argv[1])
    print(interpreter(venv) if argv[0] == "python" else prepare(venv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
