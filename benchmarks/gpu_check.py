"""One-shot GPU verification (``make gpu-check``): build, test, sanitize, benchmark.

On one H100/H200 with no network, in at most --budget seconds (default 470):

1. install    By default, the prebuilt CUDA extension: ``.whl/strainer_fast-*.whl``, made by
              ``python benchmarks/gpu_check.py --make-wheel`` on a machine with the GPU machine's
              CUDA build of torch and nvcc (archs ``80;90a-real``; no GPU needed) and carried in
              ``.whl/`` (git-ignored) next to its ``strainer_fast-wheel.json``, which records a
              digest of the compiled sources (csrc/, CMakeLists.txt). Its ``_C`` library joins
              this checkout's Python package in a temporary folder, in seconds. A missing wheel
              or one built from other sources (the digest differs) falls through to 2-3.
2. cutlass    (source builds only) CUTLASS headers from $STRAINER_FAST_CUTLASS_DIR (a folder
              holding cutlass/cutlass.h), else the ``nvidia-cutlass`` wheel carried in ``.whl/``
              (``pip install --no-index --no-deps --target`` into a temporary folder), else an
              installed ``cutlass_library``.
3. build      (``--build``, or no usable wheel) ``pip install --no-build-isolation --no-deps
              --no-index --target`` of this checkout into a temporary folder, for the device's
              own arch (cc 9.0 -> ``90a-real``; via STRAINER_FAST_CUDA_ARCHS, CUDAARCHS and
              TORCH_CUDA_ARCH_LIST); never timed against a full sm_90a build on the GPU
              machine, so its limit is a guess. Fails if the result has no CUDA kernels.
   selfcheck  first thing on the hardware: the self-check in its child process, the launcher's
              branch counters against the host-side dispatch plan, and a non-current device
              when there are two (the test_cuda.py tests below, -x).
4. tests      the rest of ``python_tests/test_cuda.py`` (self-check strict), JUnit summary.
5. memcheck   ``compute-sanitizer --tool memcheck`` on python_tests/cuda_sanitizer_case.py
6. racecheck  ``compute-sanitizer --tool racecheck`` on the same case (forward + backward in
              every precision; self-check off to keep it small). "unsupported" where the tool
              refuses the device.
7. bench      ``benchmarks/bench_cuda_step.py`` (partial JSON survives its time limit).

Each stage has its own time limit (and never more than what is left of the budget); a failed
stage does not stop the next. Writes benchmarks/results/gpu_check.json (device, driver, torch /
CUDA versions, git commit, each stage's status and time, test summary) and copies it, the
benchmark's JSON and table and the logs into $OUT when that is set (at most 8 files).

    python benchmarks/gpu_check.py [--budget 470] [--dry-run] [--skip bench,racecheck] [--build]
    python benchmarks/gpu_check.py --make-wheel   # on a CUDA-torch machine, before the GPU run
"""

from __future__ import annotations

import argparse
import glob
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"
CASE = REPO / "python_tests" / "cuda_sanitizer_case.py"
WHEEL_DIR = REPO / ".whl"
WHEEL_INFO = "strainer_fast-wheel.json"
WHEEL_ARCHS = "80;90a-real"
# test_cuda.py tests of the selfcheck stage (the tests stage deselects them)
FIRST_TESTS = ("branch_counters_match_the_plan or selfcheck_in_a_child_process or "
               "another_device_than_the_current or selfcheck_passes")

# name: seconds at most (each also capped by what is left of the budget)
STAGE_LIMITS = {"install": 60, "cutlass": 60, "build": 230, "selfcheck": 90, "tests": 150,
                "memcheck": 70, "racecheck": 70, "bench": 200}


@dataclass
class Stage:
    name: str
    status: str = "not run"  # ok, failed, timeout, unsupported, skipped, not run
    seconds: float = 0.0
    detail: str = ""
    log: str = ""


@dataclass
class Check:
    budget: float
    work: Path
    started: float = field(default_factory=time.monotonic)
    stages: list[Stage] = field(default_factory=list)
    env: dict = field(default_factory=lambda: dict(os.environ))

    def left(self) -> float:
        return self.budget - (time.monotonic() - self.started)

    def run(self, stage: Stage, cmd: list[str], limit: float, cwd: Path = REPO,
            env: dict | None = None) -> subprocess.CompletedProcess | None:
        """Runs `cmd` with its output in work/<stage>.log; None on timeout (status set)."""
        log = self.work / f"{stage.name}.log"
        stage.log = str(log)
        timeout = max(1.0, min(limit, self.left()))
        t0 = time.monotonic()
        with open(log, "w") as fh:
            fh.write(f"$ {' '.join(cmd)}\n")
            fh.flush()
            try:
                proc = subprocess.run(cmd, cwd=cwd, env=env or self.env, stdout=fh,
                                      stderr=subprocess.STDOUT, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                stage.status, stage.detail = "timeout", f"killed after {timeout:.0f} s"
                proc = None
        stage.seconds = time.monotonic() - t0
        return proc


def tail(path: str, lines: int = 15) -> str:
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def device_arch() -> tuple[str, str]:
    """(STRAINER_FAST_CUDA_ARCHS / CUDAARCHS value, TORCH_CUDA_ARCH_LIST value) for GPU 0."""
    import torch

    major, minor = torch.cuda.get_device_capability(0)
    suffix = "a" if (major, minor) == (9, 0) else ""  # wgmma / setmaxnreg need sm_90a
    return f"{major}{minor}{suffix}-real", f"{major}.{minor}{suffix}"


def find_cutlass(check: Check, stage: Stage) -> str | None:
    """A folder holding cutlass/cutlass.h, or None (stage status says why)."""
    given = os.environ.get("STRAINER_FAST_CUTLASS_DIR", "")
    if given:
        ok = (Path(given) / "cutlass" / "cutlass.h").exists()
        stage.status = "ok" if ok else "failed"
        stage.detail = f"STRAINER_FAST_CUTLASS_DIR={given}" + ("" if ok else " has no cutlass/cutlass.h")
        return given if ok else None
    wheels = sorted(glob.glob(str(REPO / ".whl" / "nvidia_cutlass-*.whl")))
    if wheels:
        target = check.work / "cutlass"
        proc = check.run(stage, [sys.executable, "-m", "pip", "install", "-q", "--no-index",
                                 "--no-deps", "--no-compile", "--target", str(target), wheels[-1]],
                         STAGE_LIMITS["cutlass"])
        include = target / "cutlass_library" / "source" / "include"
        if proc is not None and proc.returncode == 0 and (include / "cutlass" / "cutlass.h").exists():
            stage.status, stage.detail = "ok", f"from {Path(wheels[-1]).name} -> {include}"
            return str(include)
        if stage.status != "timeout":
            stage.status = "failed"
            stage.detail = f"could not unpack {Path(wheels[-1]).name}: {tail(stage.log, 5)}"
        return None
    try:
        import cutlass_library

        include = Path(cutlass_library.__file__).parent / "source" / "include"
        if (include / "cutlass" / "cutlass.h").exists():
            stage.status, stage.detail = "ok", f"installed cutlass_library: {include}"
            return str(include)
    except ImportError:
        pass
    stage.status = "failed"
    stage.detail = ("no CUTLASS: carry the nvidia-cutlass wheel in .whl/ (see README, GPU usage) "
                    "or set STRAINER_FAST_CUTLASS_DIR")
    return None


def source_digest() -> str:
    """sha256 of what the compiled extension is built from (csrc/, CMakeLists.txt)."""
    h = hashlib.sha256()
    files = sorted(p for p in (REPO / "csrc").rglob("*") if p.is_file())
    for path in [*files, REPO / "CMakeLists.txt"]:
        h.update(str(path.relative_to(REPO)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()


def prebuilt_wheel() -> tuple[Path | None, str]:
    """(the carried wheel, why) when its sources match this checkout's, else (None, why not)."""
    wheels = sorted(WHEEL_DIR.glob("strainer_fast-*.whl"))
    if not wheels:
        return None, f"no prebuilt wheel in {WHEEL_DIR} (make one with --make-wheel)"
    try:
        info = json.loads((WHEEL_DIR / WHEEL_INFO).read_text())
    except (OSError, ValueError):
        return None, f"{wheels[-1].name} has no readable {WHEEL_INFO} (remake it with --make-wheel)"
    if info.get("wheel") != wheels[-1].name or info.get("sources") != source_digest():
        return None, (f"{wheels[-1].name} was built from other sources than this checkout's "
                      "csrc/ and CMakeLists.txt (remake it with --make-wheel)")
    return wheels[-1], f"{wheels[-1].name} (archs {info.get('archs')}, torch {info.get('torch')})"


def probe_cuda(site: str, cwd: Path) -> tuple[bool, str]:
    """Whether strainer_fast in `site` has its CUDA kernels built and registered."""
    probe = subprocess.run(
        [sys.executable, "-c", "import strainer_fast._C as c, strainer_fast.ops as o; "
         "print(c.built_with_cuda(), o.compiled_kernel_available('cuda'))"],
        cwd=cwd, env=dict(os.environ, PYTHONPATH=site), capture_output=True, text=True)
    return probe.stdout.split() == ["True", "True"], probe.stdout.strip() or probe.stderr[-300:]


def install_wheel(check: Check, stage: Stage, wheel: Path, site: str) -> bool:
    """The wheel's compiled _C next to this checkout's Python package, in `site`."""
    unpacked = check.work / "wheel"
    proc = check.run(stage, [sys.executable, "-m", "pip", "install", "-q", "--no-index",
                             "--no-deps", "--no-compile", "--target", str(unpacked), str(wheel)],
                     STAGE_LIMITS["install"])
    libs = sorted((unpacked / "strainer_fast").glob("_C*.so")) if proc is not None else []
    if proc is None or proc.returncode != 0 or not libs:
        if stage.status != "timeout":
            stage.status, stage.detail = "failed", f"could not unpack {wheel.name}: {tail(stage.log, 5)}"
        return False
    shutil.copytree(REPO / "strainer_fast", Path(site) / "strainer_fast",
                    ignore=shutil.ignore_patterns("__pycache__", "*.so"))
    shutil.copy(libs[-1], Path(site) / "strainer_fast" / libs[-1].name)
    ok, text = probe_cuda(site, check.work)
    stage.status = "ok" if ok else "failed"
    stage.detail = f"{wheel.name}" + ("" if ok else f"; CUDA kernels built and registered: {text}")
    return ok


def make_wheel() -> int:
    """Builds .whl/strainer_fast-*.whl (archs 80;90a-real) and its WHEEL_INFO here: needs a
    CUDA build of torch (the GPU machine's version), nvcc of its major version and CUTLASS."""
    import torch

    if torch.version.cuda is None:
        print("gpu_check --make-wheel: this torch is a CPU-only build; the wheel needs the GPU "
              "machine's CUDA build of torch (and nvcc, CUTLASS) on the building machine",
              file=sys.stderr)
        return 2
    WHEEL_DIR.mkdir(exist_ok=True)
    for old in WHEEL_DIR.glob("strainer_fast-*.whl"):
        old.unlink()
    env = dict(os.environ, STRAINER_FAST_CUDA_ARCHS=WHEEL_ARCHS)
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation",
                           "--no-deps", "-w", str(WHEEL_DIR), str(REPO)], env=env)
    wheels = sorted(WHEEL_DIR.glob("strainer_fast-*.whl"))
    if proc.returncode != 0 or not wheels:
        print("gpu_check --make-wheel: pip wheel failed", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index",
                        "--target", tmp, str(wheels[-1])], check=True)
        ok, text = probe_cuda(tmp, Path(tmp))
    if not ok:
        print(f"gpu_check --make-wheel: {wheels[-1].name} lacks the CUDA kernels: {text}",
              file=sys.stderr)
        wheels[-1].unlink()
        return 1
    (WHEEL_DIR / WHEEL_INFO).write_text(json.dumps({
        "wheel": wheels[-1].name, "sources": source_digest(), "archs": WHEEL_ARCHS,
        "torch": torch.__version__, "cuda": torch.version.cuda, **git_commit()}, indent=1))
    print(f"gpu_check: {wheels[-1]} (carry .whl/ to the GPU machine)")
    return 0


def junit_summary(path: Path) -> dict:
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError):
        return {}
    suite = root if root.tag == "testsuite" else root.find("testsuite")
    if suite is None:
        return {}
    failed = [f"{case.get('classname')}::{case.get('name')}" for case in suite.iter("testcase")
              if case.find("failure") is not None or case.find("error") is not None]
    return {k: int(suite.get(k, 0)) for k in ("tests", "failures", "errors", "skipped")} | {
        "seconds": float(suite.get("time", 0)), "failed": failed[:40]}


def sanitizer(check: Check, stage: Stage, tool: str, site: str) -> None:
    exe = shutil.which("compute-sanitizer") or shutil.which(
        "compute-sanitizer", path=os.path.join(os.environ.get("CUDA_HOME", "/usr/local/cuda"), "bin"))
    if exe is None:
        stage.status, stage.detail = "unsupported", "compute-sanitizer not found"
        return
    env = dict(check.env, PYTHONPATH=site, STRAINER_FAST_CUDA_SELFCHECK="0")
    proc = check.run(stage, [exe, "--tool", tool, "--error-exitcode", "3", sys.executable,
                             str(CASE)], STAGE_LIMITS[tool], env=env)
    if proc is None:
        return
    text = Path(stage.log).read_text(errors="replace")
    if "not supported" in text.lower() or "error 999" in text.lower():
        stage.status, stage.detail = "unsupported", tail(stage.log, 3)
    elif proc.returncode == 0 and "sanitizer-ok" in text:
        stage.status = "ok"
        stage.detail = next((ln for ln in text.splitlines() if "ERROR SUMMARY" in ln
                             or "RACECHECK SUMMARY" in ln), "no errors")
    else:
        stage.status, stage.detail = "failed", f"exit {proc.returncode}: {tail(stage.log, 8)}"


def git_commit() -> dict:
    """HEAD of this checkout (or $STRAINER_FAST_GIT_COMMIT where the copy has no .git)."""
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO, capture_output=True, text=True, timeout=10)
        if head.returncode == 0:
            return {"commit": head.stdout.strip(), "dirty": bool(dirty.stdout.strip())}
    except (OSError, subprocess.SubprocessError):
        pass
    return {"commit": os.environ.get("STRAINER_FAST_GIT_COMMIT", "unknown"), "dirty": None}


def machine_info() -> dict:
    """Device, driver, Python / torch / CUDA versions and git commit; no host name. Needs no
    built strainer_fast (this runs before the build)."""
    import platform

    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__,
            "cuda": torch.version.cuda, **git_commit()}
    try:
        smi = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True, timeout=30)
        info["driver"] = smi.stdout.strip().splitlines()[0] if smi.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError, IndexError):
        info["driver"] = "unknown"
    if torch.cuda.is_available():
        p = torch.cuda.get_device_properties(0)
        info.update(gpu=p.name, capability=f"{p.major}.{p.minor}", sms=p.multi_processor_count,
                    memory_gib=round(p.total_memory / 2**30, 1))
    return info


def plan(args) -> list[str]:
    wheels = sorted(glob.glob(str(REPO / ".whl" / "nvidia_cutlass-*.whl")))
    source = (f"STRAINER_FAST_CUTLASS_DIR={os.environ['STRAINER_FAST_CUTLASS_DIR']}"
              if os.environ.get("STRAINER_FAST_CUTLASS_DIR") else
              f"wheel {Path(wheels[-1]).name}" if wheels else
              "an installed cutlass_library (none carried in .whl/)")
    wheel, why = prebuilt_wheel()
    build = args.build or wheel is None
    start = (f"build from source (--build); {why}" if args.build else
             f"install the prebuilt {why}" if wheel else f"build from source: {why}")
    not_run = {"install"} if build else {"cutlass", "build"}
    return [f"budget {args.budget:.0f} s; {start}; CUTLASS from {source}"] + [
        f"{name}: at most {limit} s" + (" (skipped)" if name in args.skip else
                                        " (not run)" if name in not_run else "")
        for name, limit in STAGE_LIMITS.items()]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--budget", type=float, default=470.0, help="seconds for all stages")
    parser.add_argument("--skip", default="", help="comma-separated stages to skip")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    parser.add_argument("--build", action="store_true",
                        help="build from source even when a matching prebuilt wheel is carried")
    parser.add_argument("--make-wheel", action="store_true",
                        help="build .whl/strainer_fast-*.whl for a later GPU run, and stop")
    parser.add_argument("--bench-args", default="--grids 512,178 --repeats 20",
                        help="the target grid first: partial results survive the time limit")
    parser.add_argument("--out", default=str(RESULTS / "gpu_check.json"))
    args = parser.parse_args(argv)
    args.skip = {s for s in args.skip.split(",") if s}
    unknown = args.skip - set(STAGE_LIMITS)
    if unknown:
        parser.error(f"unknown stages {sorted(unknown)}; stages: {list(STAGE_LIMITS)}")
    if args.make_wheel:
        return make_wheel()
    if args.dry_run:
        print("gpu_check plan:\n  " + "\n  ".join(plan(args)))
        return 0
    import torch

    if not torch.cuda.is_available():
        print("gpu_check: no CUDA device visible (torch.cuda.is_available() is False): nothing "
              "checked. Run `make gpu-check` on a GPU machine (README, GPU usage).",
              file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="strainer_gpu_check_"))
    check = Check(budget=args.budget, work=work)
    site = str(work / "site")
    bench_json = work / "cuda_step.json"
    report = {"machine": machine_info(), "budget_s": args.budget, "stages": []}
    print(f"gpu_check on {report['machine'].get('gpu')} (cc {report['machine'].get('capability')}"
          f"), work folder {work}", flush=True)

    def stage(name: str) -> Stage | None:
        s = Stage(name)
        check.stages.append(s)
        if name in args.skip:
            s.status = "skipped"
            return None
        if check.left() < 5:
            s.status, s.detail = "skipped", "budget spent"
            return None
        print(f"== {name} (at most {min(STAGE_LIMITS[name], check.left()):.0f} s)", flush=True)
        return s

    built = False
    wheel, why = (None, "--build") if args.build else prebuilt_wheel()
    if wheel is None:
        check.stages.append(Stage("install", "skipped", detail=why))
    elif (s := stage("install")) is not None:
        built = install_wheel(check, s, wheel, site)
    cutlass = None
    if not built and (s := stage("cutlass")) is not None:
        t0 = time.monotonic()
        cutlass = find_cutlass(check, s)
        s.seconds = time.monotonic() - t0
    if not built and (s := stage("build")) is not None:
        archs, torch_archs = device_arch()
        env = dict(check.env, STRAINER_FAST_CUDA_ARCHS=archs, CUDAARCHS=archs,
                   TORCH_CUDA_ARCH_LIST=torch_archs, CMAKE_BUILD_PARALLEL_LEVEL=str(os.cpu_count()))
        if cutlass:
            env["STRAINER_FAST_CUTLASS_DIR"] = cutlass
        proc = check.run(s, [sys.executable, "-m", "pip", "install", "-v", "--no-build-isolation",
                             "--no-deps", "--no-index", "--target", site, str(REPO)],
                         STAGE_LIMITS["build"], env=env)
        if proc is not None:
            probed, text = probe_cuda(site, work)
            built = proc.returncode == 0 and probed
            s.status = "ok" if built else "failed"
            notes = [ln.strip() for ln in Path(s.log).read_text(errors="replace").splitlines()
                     if "strainer_fast:" in ln or "error" in ln.lower()][-6:]
            s.detail = (f"archs {archs}, {s.seconds:.0f} s; " if built else
                        f"pip exit {proc.returncode}, {s.seconds:.0f} s; CUDA kernels built and "
                        f"registered: {text}; ") + " / ".join(notes)
        print(f"   build: {s.status} in {s.seconds:.0f} s", flush=True)
    env_site = dict(check.env, PYTHONPATH=site, STRAINER_FAST_GPU_CHECK="1")
    for name, select in (("selfcheck", ["-x", "-k", FIRST_TESTS]),
                         ("tests", ["-k", f"not ({FIRST_TESTS})"])):
        if (s := stage(name)) is None:
            continue
        if not built:
            s.status, s.detail = "skipped", "no CUDA build"
            continue
        xml = work / f"{name}.xml"
        proc = check.run(s, [sys.executable, "-m", "pytest", "-q", "-rfEs", "-p",
                             "no:cacheprovider", f"--junitxml={xml}", *select, "test_cuda.py"],
                         STAGE_LIMITS[name], cwd=REPO / "python_tests", env=env_site)
        report[name] = junit_summary(xml)
        if proc is not None:
            s.status = "ok" if proc.returncode == 0 else "failed"
            t = report[name]
            s.detail = (f"{t.get('tests', '?')} tests, {t.get('failures', '?')} failed, "
                        f"{t.get('errors', '?')} errors, {t.get('skipped', '?')} skipped"
                        if t else tail(s.log, 8))
    for tool in ("memcheck", "racecheck"):
        if (s := stage(tool)) is not None:
            if not built:
                s.status, s.detail = "skipped", "no CUDA build"
            else:
                sanitizer(check, s, tool, site)
    if (s := stage("bench")) is not None:
        if not built:
            s.status, s.detail = "skipped", "no CUDA build"
        else:
            proc = check.run(s, [sys.executable, str(REPO / "benchmarks" / "bench_cuda_step.py"),
                                 *args.bench_args.split(), "--out", str(bench_json)],
                             STAGE_LIMITS["bench"], env=dict(env_site, PYTHONUNBUFFERED="1"))
            if proc is not None:
                s.status = "ok" if proc.returncode == 0 else "failed"
                s.detail = tail(s.log, 4) if proc.returncode else "see cuda_step.json / .md"
            if bench_json.exists():
                RESULTS.mkdir(parents=True, exist_ok=True)
                for suffix in (".json", ".md"):
                    src = bench_json.with_suffix(suffix)
                    if src.exists():
                        shutil.copy(src, RESULTS / f"cuda_step{suffix}")

    report["stages"] = [asdict(s) for s in check.stages]
    report["total_s"] = time.monotonic() - check.started
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=1))
    copy_to_out(Path(args.out), work, check.stages)
    print(summary_table(check.stages, report["total_s"]))
    return 0 if all(s.status in ("ok", "skipped", "unsupported") for s in check.stages) else 1


def copy_to_out(report: Path, work: Path, stages: list[Stage]) -> None:
    """$OUT (when set) gets the report, the benchmark's JSON and table, and the stage logs
    (at most 8 files, the last 4 MB of each log)."""
    out = os.environ.get("OUT")
    if not out:
        return
    dest = Path(out)
    dest.mkdir(parents=True, exist_ok=True)
    files = [report, work / "cuda_step.json", work / "cuda_step.md"]
    files += [Path(s.log) for s in stages if s.log and s.name != "cutlass"]
    for src in [f for f in files if f.exists()][:8]:
        data = src.read_bytes()
        (dest / src.name).write_bytes(data[-4_000_000:] if src.suffix == ".log" else data)


def summary_table(stages: list[Stage], total: float) -> str:
    lines = ["", f"gpu_check summary ({total:.0f} s in all)",
             "| stage | status | seconds | detail |", "| --- | --- | ---: | --- |"]
    for s in stages:
        detail = s.detail.replace("\n", " / ").replace("|", "\\|")[:160]
        lines.append(f"| {s.name} | {s.status} | {s.seconds:.0f} | {detail} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
