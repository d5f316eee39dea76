# Set-up and everyday commands. `make demo` and `make test` each install what they need: into
# the environment make runs in when that is a venv or conda environment, else into the project
# virtual environment $(VENV)/, made on first use (build_support/make_env.py; it also checks
# for a C++17 compiler before anything is installed). The first line of each says where.
PYTHON ?= python3
VENV ?= .venv
# The interpreter every target runs (absolute path); empty when $(PYTHON) is not found.
PY := $(shell $(PYTHON) build_support/make_env.py python $(VENV) 2>/dev/null)
PIP := $(PY) -m pip
BIN := $(dir $(PY))
# Pinned CPU torch (a local wheel on the dev/CI machines); never let pip pick an unpinned torch.
TORCH_SPEC ?= torch==2.13.0
BUILD_DEPS := scikit-build-core pybind11 ninja cmake
RUNTIME_DEPS := numpy pillow tqdm matplotlib scikit-image trimesh scipy
TEST_DEPS := pytest
DOCS_DEPS := "mkdocs>=1.6,<2" "mkdocs-material>=9.5,<10" "mkdocstrings[python]>=1.0,<2" "ruff>=0.5"  # = pyproject's docs extra
CUDA_CHECK_DEPS := cmake ninja nvidia-cutlass==4.2.0.0  # CUTLASS: headers only

.PHONY: env install demo occupancy-demo test docs cuda-check gpu-check gpu-wheel bench clean repro \
	repro-fresh repro-paper repro-validate

env:
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "strainer_fast: $(PYTHON) not found." \
		"Fix: install Python >= 3.10 (Debian/Ubuntu: sudo apt-get install python3 python3-venv)" \
		"or run make PYTHON=/path/to/python3." >&2; exit 1; }
	@$(PYTHON) build_support/make_env.py prepare $(VENV)

install: env
	@$(PY) -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('$(patsubst torch==%,%,$(TORCH_SPEC))') else 1)" 2>/dev/null \
		|| $(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q $(BUILD_DEPS) $(RUNTIME_DEPS) $(TEST_DEPS)
	$(PIP) install -q --no-build-isolation --no-deps .

demo: install
	$(BIN)strainer-fast demo --out strainer_fast_out/demo

occupancy-demo: install
	$(BIN)strainer-fast occupancy demo --out strainer_fast_out/occupancy_demo

test: install
	cd python_tests && $(PY) -m pytest -q

# The documentation site (docs/build.py: generated tables, strict MkDocs build, API coverage,
# a page rendered in headless Chromium).
docs: install
	$(PIP) install -q $(DOCS_DEPS)
	$(PY) docs/build.py

# Compiles every CUDA kernel for sm_80 and sm_90a with nvcc (no GPU needed; ptxas warnings
# are errors), and the torch launcher as an object when torch is importable. Installs cmake,
# ninja and the CUTLASS headers into the environment first (or: STRAINER_FAST_CUTLASS_DIR).
cuda-check: env
	$(PIP) install -q $(CUDA_CHECK_DEPS)
	PATH="$(BIN):$$PATH" cmake -S . -B build/cuda-check -G Ninja \
		-DSTRAINER_FAST_CUDA_CHECK_ONLY=ON -DPython_EXECUTABLE="$(PY)"
	PATH="$(BIN):$$PATH" cmake --build build/cuda-check

# One-shot verification on one H100/H200, no network, <= 8 min (README, GPU usage): build the
# CUDA path for the device's arch (CUTLASS from .whl/ or STRAINER_FAST_CUTLASS_DIR), test_cuda.py,
# compute-sanitizer memcheck + racecheck, bench_cuda_step.py; JSON under benchmarks/results/.
# Runs $(PYTHON) itself, not the project venv: the GPU machine's Python with CUDA torch.
gpu-check:
	$(PYTHON) benchmarks/gpu_check.py

# The prebuilt CUDA extension gpu-check installs (.whl/), built where CUDA torch and nvcc are.
gpu-wheel:
	$(PYTHON) benchmarks/gpu_check.py --make-wheel

bench: install
	$(PY) benchmarks/bench_cpu_step.py

# Paper reproduction -> docs/repro-report.md + docs/repro/. Settings:
# benchmarks/repro/preregistration.toml. repro: preset cpu (74 min measured on 2 free cores);
# repro-paper: the paper's sizes, for a GPU; repro-validate: the choices made on the
# validation split (docs/repro/validation.json), run before the report.
# repro and repro-paper continue an interrupted run (items finished with the same settings are
# reused); repro-fresh (run_all.py --fresh) starts over, e.g. after a code or data change.
repro: install
	$(PY) benchmarks/repro/run_all.py --preset cpu --no-progress

repro-fresh: install
	$(PY) benchmarks/repro/run_all.py --preset cpu --fresh --no-progress

repro-paper: install
	$(PY) benchmarks/repro/run_all.py --preset paper --no-progress

repro-validate: install
	$(PY) benchmarks/repro/validate.py --preset cpu --no-progress

# Build outputs only; the project virtual environment stays (rm -rf $(VENV) to remake it).
clean:
	rm -rf build dist *.egg-info strainer_fast_out
