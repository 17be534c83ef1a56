# datagen: every target wraps the `datagen` CLI; `make dataset` and `make test`
# work on a fresh clone (they install what they need first).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

SCENES    ?= racing
SEQUENCES ?=
FRAMES    ?=
RES       ?=
SCALE     ?=
SPP       ?=
WORKERS   ?=
SCHEDULER ?=
OUT       ?=
STORE     ?=

.PHONY: install test lint dataset render bench train eval preview clean sheets

install: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	# torch first and pinned: 2.13.0 is the CPU build on disk here.
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test,train]'
	touch $(STAMP)

test: install
	$(BIN)/ruff check datagen tests
	DATAGEN_REQUIRE_GL=1 LP_NUM_THREADS=$${LP_NUM_THREADS:-2} $(BIN)/python -m pytest -q --durations=15

lint: install
	$(BIN)/ruff check datagen tests

render: install
	$(BIN)/datagen render $(or $(SCENE),primitives) --out $(or $(OUT),storage/render) --overwrite \
	  $(if $(FRAMES),--frames $(FRAMES)) $(if $(RES),--res $(RES)) \
	  $(if $(SCALE),--scale $(SCALE)) $(if $(SPP),--spp $(SPP))

dataset: install
	$(BIN)/datagen build $(subst $(comma), ,$(SCENES)) \
	  $(if $(SEQUENCES),--sequences $(SEQUENCES)) $(if $(FRAMES),--frames $(FRAMES)) \
	  $(if $(RES),--res $(RES)) $(if $(SCALE),--scale $(SCALE)) $(if $(SPP),--spp $(SPP)) \
	  $(if $(WORKERS),--workers $(WORKERS)) $(if $(SCHEDULER),--scheduler $(SCHEDULER)) \
	  $(if $(OUT),--out $(OUT))

bench: install
	$(BIN)/datagen bench --out $(or $(OUT),storage/bench.json)

RUN   ?= runs/latest
STEPS ?=
SPLIT ?= test

train: install
	@test -n "$(STORE)" || { echo "make train: give STORE=path/to/store.zarr (made by make dataset)" >&2; exit 2; }
	$(BIN)/datagen train $(STORE) --out $(RUN) $(if $(STEPS),--steps $(STEPS)) $(if $(RESUME),--resume) \
	  $(if $(PRESET),--preset $(PRESET)) $(if $(STAGE),--stage $(STAGE)) $(if $(INIT),--init $(INIT))

eval: install
	@test -n "$(STORE)" || { echo "make eval: give STORE=path/to/store.zarr and RUN=run folder" >&2; exit 2; }
	$(BIN)/datagen eval $(RUN) $(STORE) --split $(SPLIT)

preview: install
	$(BIN)/datagen preview $(STORE) --out $(or $(OUT),storage/preview.png)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache

comma := ,

sheets: install
	LP_NUM_THREADS=$${LP_NUM_THREADS:-2} $(BIN)/python -m datagen.sheet --out docs/images

# GL loader packages (.gl/) and Python 3.12 wheels (.whl/) for a GPU node without
# network access; docs/gpu.md says how to use them there.
DEVICE_WHEELS := moderngl==5.13.0 glcontext==3.1.0 pyrr==0.10.3 trimesh==5.2.0 \
  OpenEXR==3.5.3 dask==2026.8.0 \
  distributed==2026.8.0 zarr==3.1.6 numcodecs==0.16.6 donfig==0.8.1.post1 google-crc32c==1.9.0 \
  tornado==6.6.1 tblib==3.2.2 zict==3.0.0 locket==1.0.0 partd==1.4.2 tensorstore==0.1.86 ml_dtypes==0.6.0
device-deps:
	mkdir -p .git/info .gl .whl /tmp/amd64/partial
	grep -qx '/.gl/' .git/info/exclude 2>/dev/null || echo /.gl/ >> .git/info/exclude
	grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo /.whl/ >> .git/info/exclude
	o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'; \
	  apt-get $$o update -qq && cd .gl && apt-get $$o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2
	python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
	  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
	  --platform manylinux1_x86_64 -d .whl $(DEVICE_WHEELS)
