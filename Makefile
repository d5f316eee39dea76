# Set-up and everyday commands. `make demo` and `make test` each install what they need.
PYTHON ?= python3
PIP := $(PYTHON) -m pip
# Pinned CPU torch (a local wheel on the dev/CI machines); never let pip pick an unpinned torch.
TORCH_SPEC ?= torch==2.13.0
BUILD_DEPS := scikit-build-core pybind11 ninja cmake
RUNTIME_DEPS := numpy pillow tqdm matplotlib scikit-image trimesh scipy
TEST_DEPS := pytest

.PHONY: install demo occupancy-demo test cuda-check gpu-check bench clean repro repro-paper repro-validate

install:
	$(PYTHON) -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('$(TORCH_SPEC:torch==%=%)') else 1)" 2>/dev/null \
		|| $(PIP) install -q "$(TORCH_SPEC)"
	$(PIP) install -q $(BUILD_DEPS) $(RUNTIME_DEPS) $(TEST_DEPS)
	$(PIP) install -q --no-build-isolation --no-deps .

demo: install
	strainer-fast demo --out strainer_fast_out/demo

occupancy-demo: install
	strainer-fast occupancy demo --out strainer_fast_out/occupancy_demo

test: install
	cd python_tests && $(PYTHON) -m pytest -q

# Compiles every CUDA kernel for sm_80 and sm_90a with nvcc (no GPU needed; ptxas warnings
# are errors), and the torch launcher as an object when torch is importable. Needs the
# CUTLASS headers: `pip install nvidia-cutlass==4.2.0.0` or STRAINER_FAST_CUTLASS_DIR.
cuda-check:
	cmake -S . -B build/cuda-check -G Ninja -DSTRAINER_FAST_CUDA_CHECK_ONLY=ON \
		-DPython_EXECUTABLE="$$(command -v $(PYTHON))"
	cmake --build build/cuda-check

# One-shot verification on one H100/H200, no network, <= 8 min (README, GPU usage): build the
# CUDA path for the device's arch (CUTLASS from .whl/ or STRAINER_FAST_CUTLASS_DIR), test_cuda.py,
# compute-sanitizer memcheck + racecheck, bench_cuda_step.py; JSON under benchmarks/results/.
gpu-check:
	$(PYTHON) benchmarks/gpu_check.py

bench: install
	$(PYTHON) benchmarks/bench_cpu_step.py

# Paper reproduction -> docs/REPRODUCTION.md + docs/repro/ (run `make install` first). Settings:
# benchmarks/repro/preregistration.toml. repro: preset cpu (161 CPU min measured, ~80 min on 2 free cores);
# repro-paper: the paper's sizes, for a GPU; repro-validate: the choices made on the
# validation split (docs/repro/validation.json), run before the report.
repro:
	$(PYTHON) benchmarks/repro/run_all.py --preset cpu --fresh --no-progress

repro-paper:
	$(PYTHON) benchmarks/repro/run_all.py --preset paper --fresh --no-progress

repro-validate:
	$(PYTHON) benchmarks/repro/validate.py --preset cpu --no-progress

clean:
	rm -rf build dist *.egg-info strainer_fast_out
