# lakepaper: build the paper's results by running its notebooks in order.
#
#   make help                 list the targets
#   make test                 fast test suite (bootstraps .venv on first use)
#   make all                  run every notebook stage for $(PROFILE)
#   make all PROFILE=tiny PARAMS="-p world_seed 7"   (each stage gets the names its notebook declares)
#
# Each stage is one notebook, notebooks/<stage>.ipynb, executed by papermill (through
# `lakepaper run`, which first refuses parameters the notebook does not declare) into
# build/<profile>/notebooks/<stage>.ipynb (the source is never overwritten). The
# notebook's last step writes build/<profile>/<stage>/manifest.json; that file is
# what marks a stage as done, and what the next stage depends on.

SHELL := /bin/bash
.DEFAULT_GOAL := help

PROFILE ?= demo
PYTHON ?= python3
PARAMS ?=
PY = .venv/bin/python
BUILD = build/$(PROFILE)
VENV_STAMP = .venv/.installed

# Papermill's progress bar is noise in CI logs; CI systems set CI=true.
PAPERMILL_OPTS ?= $(if $(CI),--no-progress-bar,)

# The notebooks write through lakepaper.paths, which honours LAKEPAPER_BUILD; point it at the
# folder this Makefile checks, so the two can never disagree.
export LAKEPAPER_BUILD := $(CURDIR)/build

# Notebook stages, in order: one notebook each. Adding a stage = adding its notebook and its entry in
# lakepaper.stages.REGISTRY, which declares what it reads.
STAGES = $(basename $(notdir $(wildcard notebooks/[0-9][0-9]_*.ipynb)))

PAPER = $(BUILD)/paper.html
# The stages this profile builds (all but 00_world for PROFILE=paper, which runs on real data), as
# written into $(BUILD)/.stages.mk from lakepaper.stages.stages_for; every stage before that is known.
MANIFESTS = $(foreach s,$(PROFILE_STAGES),$(BUILD)/$(s)/manifest.json)

.PHONY: help test test-all lint all paper prereqs browser world clean distclean lab venv bench bench-seeds $(STAGES)

help: ## show this list of targets
	@echo "lakepaper: make [target] [PROFILE=demo|tiny|paper] [PARAMS=\"-p name value ...\"]"
	@echo
	@grep -hE '^[a-zA-Z0-9_.-]+:.*## ' $(MAKEFILE_LIST) \
	  | awk 'BEGIN {FS = ":.*## "} {printf "  %-12s %s\n", $$1, $$2}'
	@echo "  <stage>      run one stage and the ones before it; stages: $(STAGES)"
	@echo
	@echo "PROFILE=$(PROFILE)  outputs in $(BUILD)/"

venv: $(VENV_STAMP) ## create .venv, install lakepaper[gee,lab,dev] and the 'lakepaper' Jupyter kernel

$(VENV_STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv .venv
	$(PY) -m pip install --upgrade pip
	.venv/bin/pip install -e '.[gee,lab,dev]'
	$(PY) -m ipykernel install --sys-prefix --name lakepaper --display-name "lakepaper (Python 3)"
	touch $@

test: $(VENV_STAMP) browser ## fast test suite (skips tests marked slow)
	$(PY) -m pytest -m "not slow" -q

test-all: $(VENV_STAMP) browser ## every test, including the slow ones
	$(PY) -m pytest -q

lint: $(VENV_STAMP) ## ruff check and ruff format --check
	$(PY) -m ruff check lakepaper tests
	$(PY) -m ruff format --check lakepaper tests


paper: $(PAPER) ## assemble build/PROFILE/paper.html from the finished stages

prereqs: $(VENV_STAMP) ## check what PROFILE needs (paper: Earth Engine, GPU, reference files) in one list
	$(PY) -m lakepaper prereqs --profile $(PROFILE)

browser: ## install headless Chromium + chromedriver for the paper-page test (Debian; skips if not possible)
	@.ci/install-browser

world: $(BUILD)/00_world/manifest.json ## stage 00: the simulated world (alias)

# One rule per stage. Its prerequisites come from lakepaper.stages.REGISTRY through the generated
# $(BUILD)/.stages.mk: the manifests of the stages it reads (STAGE_READS_<stage>), its notebook and
# the package modules it imports (STAGE_CODE_<stage>), and its parameter file. So a change reruns
# the stage it touches and the stages that read that one's outputs, and no others.
# The old manifest is removed first, so a run that ends without writing a new one cannot pass
# for finished.
define stage_rule
$(1): $(BUILD)/$(1)/manifest.json

$(BUILD)/$(1)/manifest.json: $$(STAGE_READS_$(1)) $$(STAGE_CODE_$(1)) $(PARAM_DIR)/$(1).json | $(VENV_STAMP) $(PREREQS)
	@mkdir -p $(BUILD)/notebooks
	@rm -f $$@
	$(PY) -m lakepaper run $(1) --profile $(PROFILE) $(PAPERMILL_OPTS) --params-file $(PARAM_DIR)/$(1).json
	@test -f $$@ || { echo "make: error: notebook $(1) finished but did not write $$@;" \
	  "its last step must write the stage manifest (lakepaper.io.write_manifest)." \
	  "Executed copy: $(BUILD)/notebooks/$(1).ipynb" >&2; exit 1; }
endef

# Parameters per stage: `lakepaper stamps` gives each stage the names in PARAMS its notebook
# declares (refusing names no stage takes) and rewrites build/PROFILE/.params/<stage>.json only when
# they changed. Each stage depends on its file, so changing a parameter reruns the stage that takes
# it and the ones after, nothing before. Done while the Makefile is read, when a stage is a goal.
PARAM_DIR = $(BUILD)/.params
STAGE_GOALS = all paper world $(STAGES)
ifneq ($(filter $(STAGE_GOALS),$(MAKECMDGOALS)),)
ifneq ($(wildcard $(VENV_STAMP)),)
_stamps := $(shell LAKEPAPER_BUILD=$(CURDIR)/build $(PY) -m lakepaper stamps --profile $(PROFILE) $(PARAMS) 2>&1 || echo FAILED)
ifneq ($(filter FAILED,$(_stamps)),)
$(error $(filter-out FAILED,$(_stamps)))
endif
endif
endif

$(PARAM_DIR)/%.json: | $(VENV_STAMP)
	$(PY) -m lakepaper stamps --profile $(PROFILE) $(PARAMS)

# The stages' dependencies, written by `lakepaper stamps` (above, or by this rule on a fresh clone,
# after which make reads the Makefile again).
ifneq ($(filter $(STAGE_GOALS),$(MAKECMDGOALS)),)
$(BUILD)/.stages.mk: | $(VENV_STAMP)
	$(PY) -m lakepaper stamps --profile $(PROFILE) $(PARAMS)
include $(BUILD)/.stages.mk
endif

# PROFILE=paper checks its prerequisites once, before the first stage, and stops with one list.
PREREQS = $(if $(filter paper,$(PROFILE)),prereqs,)

PROFILE_STAGES ?= $(STAGES)
$(foreach s,$(PROFILE_STAGES),$(eval $(call stage_rule,$(s))))

all: $(MANIFESTS) $(PAPER) ## run every notebook stage for PROFILE, then assemble build/PROFILE/paper.html

# The page reads every stage's outputs; rebuilt when any stage (or the page's own code) changed.
$(PAPER): $(MANIFESTS) $(shell find lakepaper/report -name '*.py') lakepaper/explore.py lakepaper/truth.py | $(VENV_STAMP)
	$(PY) -m lakepaper paper --profile $(PROFILE)


bench: $(VENV_STAMP) ## benchmark scripts: print measured throughputs and ratios (no pass/fail; ~15 min)
	$(PY) benchmarks/composite.py --world $(BUILD)/00_world --memory
	$(PY) benchmarks/train.py
	$(PY) benchmarks/predict.py --profile $(PROFILE) $(if $(wildcard $(BUILD)/03_train/best.pt),--checkpoint $(BUILD)/03_train/best.pt --iou,)
	$(PY) benchmarks/postprocess.py
	$(PY) benchmarks/stats.py

bench-seeds: $(BUILD)/03_train/manifest.json ## stage 03's recipe over seeds: Table 1 and robustness each (demo: 10-25 min)
	$(PY) benchmarks/seeds.py --profile $(PROFILE) $(if $(SEEDS),--seeds $(SEEDS),)

# Root in containers needs --allow-root; the file browser opens in notebooks/, the whole project reachable.
LAB_OPTS ?= $(if $(filter 0,$(shell id -u)),--allow-root,)
lab: $(VENV_STAMP) ## start JupyterLab on the project (kernel: lakepaper), opening notebooks/
	$(PY) -m jupyter lab --ServerApp.root_dir=$(CURDIR) --ServerApp.preferred_dir=$(CURDIR)/notebooks $(LAB_OPTS)

clean: ## remove build/PROFILE
	rm -rf $(BUILD)

distclean: clean ## remove build/PROFILE and .venv
	rm -rf .venv
