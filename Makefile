# restore: video restoration served on NVIDIA Triton. `make demo` and `make test` do everything.
PYTHON ?= python3
VENV ?= .venv
# PY=python3 runs engine/serve with that interpreter and no venv (the GPU image: packaging/gpu).
PY ?= $(VENV)/bin/python
SETUP := $(if $(filter $(VENV)/bin/python,$(PY)),setup)
TASK ?= denoise
BACKEND ?= auto
# More export.engine flags for `make engine`, e.g. ENGINE_ARGS='--cpu-memory-arena false'.
ENGINE_ARGS ?=
HOST ?= 127.0.0.1
PORT ?= 8001
HTTP_PORT ?= 8000
METRICS_PORT ?= 8002
REPOSITORY ?= model_repository
# Tasks that ship a checkpoint and have a model-repository entry.
TASKS ?= $(sort $(foreach c,$(wildcard training/checkpoints/*.pt),$(if $(wildcard $(REPOSITORY)/$(basename $(notdir $(c)))/config.pbtxt),$(basename $(notdir $(c))))))
TRAIN_ARGS ?=
PYTEST_ARGS ?=
# make test runs test files on this many pytest-xdist workers (a file's tests stay on one worker, sharing its fixtures),
# in the order tests/conftest.py gives them (files waiting for the shipped networks' exports last).
TEST_WORKERS ?= 2
# The venv's bytecode is written as modules are first imported (make setup compiles none): with
# PYTHONDONTWRITEBYTECODE set, every later start would compile torch again (1-2 s each).
unexport PYTHONDONTWRITEBYTECODE
ROBUST_ARGS ?=
SERVED_ARGS ?=

.PHONY: help setup shipped-exports engine serve demo pictures test test-long train bench bench-quality bench-robust bench-served bench-smoke clean

help:  ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed 's/:.*## /\t/'

setup: $(VENV)/.installed  ## create .venv with pinned dependencies and the tritonserver/perf_analyzer launchers

$(VENV)/.installed: requirements.txt packaging/install_requirements.sh packaging/install_launchers.sh
	$(PYTHON) -m venv $(VENV)
	bash packaging/install_requirements.sh $(VENV) --only-binary=:all: -r requirements.txt
	bash packaging/install_launchers.sh $(VENV)
	touch $@

shipped-exports: $(SETUP)  ## re-export the ONNX committed beside each checkpoint whose checkpoint or graph source changed (commit the result)
	$(PY) -m export.shipped

engine: $(SETUP)  ## export each task's checkpoint and install it for the backend this machine runs (BACKEND=auto|onnxruntime|tensorrt)
	@for t in $(TASKS); do $(PY) -m export.engine --task $$t --backend $(BACKEND) --repository $(REPOSITORY) --onnx-cache build/onnx_cache $(ENGINE_ARGS) || exit $$?; done

serve: $(SETUP)  ## run tritonserver in the foreground on $(REPOSITORY), bound to $(HOST)
	$(PY) -m client.local_server --repository $(REPOSITORY) --host $(HOST) \
	  --grpc-port $(PORT) --http-port $(HTTP_PORT) --metrics-port $(METRICS_PORT)

demo: engine  ## start a server, restore a noisy sample clip, print PSNR before/after and frames/s, draw build/demo/before_after.png
	$(PY) -m benchmarks.demo --task $(TASK) --repository $(REPOSITORY)

pictures: engine  ## one before/after PNG per task into benchmarks/pictures/, each restored through tritonserver (about 3 min)
	$(PY) -m benchmarks.pictures --repository $(REPOSITORY)

test: setup  ## unit + integration tests against a real tritonserver (what CI runs, < 5 min)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --no-loadscope-reorder $(PYTEST_ARGS)

test-long: setup  ## the long tests left out of make test (4K tiling, 10-round load, 600-step training)
	$(PY) -m pytest -m long $(PYTEST_ARGS)

train: setup  ## train TASK (TRAIN_ARGS passes flags; see python -m training.train --help)
	$(PY) -m training.train --task $(TASK) $(TRAIN_ARGS)

bench: engine  ## perf_analyzer and side-by-side throughput; appends to benchmarks/RESULTS.md
	$(PY) -m benchmarks.run --task $(TASK)

bench-quality: setup  ## quality tables vs classical baselines on the validation clip (all tasks, inpaint too)
	$(PY) -m benchmarks.quality
	$(PY) -m benchmarks.inpaint_quality

bench-robust: setup  ## robustness grid: every task x clip x degradation vs input and FFmpeg/OpenCV (ROBUST_ARGS=--quick: checkpoint choice)
	$(PY) -m benchmarks.robust $(ROBUST_ARGS)

bench-served: engine  ## the robustness grid's main cells on whole clips, restored by the client through tritonserver (SERVED_ARGS)
	$(PY) -m benchmarks.served_grid --repository $(REPOSITORY) $(SERVED_ARGS)

bench-smoke: setup  ## a few-second run of the benchmark code (part of make test)
	$(PY) -m benchmarks.run --task $(TASK) --smoke

clean:  ## remove built artefacts (keeps .venv)
	rm -rf build runs $(REPOSITORY)/*/1/model.onnx $(REPOSITORY)/*/1/model.plan $(REPOSITORY)/*/1/*.json
