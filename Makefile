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
	DATAGEN_REQUIRE_GL=1 LP_NUM_THREADS=$${LP_NUM_THREADS:-2} $(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check datagen tests

render: install
	$(BIN)/datagen render $(or $(SCENE),primitives) --out $(or $(OUT),storage/render) \
	  $(if $(FRAMES),--frames $(FRAMES)) $(if $(RES),--res $(RES)) \
	  $(if $(SCALE),--scale $(SCALE)) $(if $(SPP),--spp $(SPP))

dataset: install
	@$(BIN)/datagen build --help >/dev/null 2>&1 || { \
	  echo "make dataset: 'datagen build' (the Dask pipeline) is not in this version yet; use 'make render'" >&2; exit 2; }
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
	$(BIN)/datagen train $(STORE) --out $(RUN) $(if $(STEPS),--steps $(STEPS)) $(if $(RESUME),--resume)

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
