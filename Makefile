# The two set-up commands: `make demo` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
REDIS_PORT ?= 6379

DIST   ?= dist
EXTRAS := test,train,tensorflow,litert,player

.PHONY: demo test lint wheel redis xtools bench image-size model realset clean

# Everything, editable: the core and every extra (an Opencast host or a worker needs only the
# core: `make wheel`, docs/opencast.md). -qq keeps pip to its errors.
$(STAMP): setup.cfg pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing opencast-ml[$(EXTRAS)] into $(VENV) (minutes the first time)"
	@$(BIN)/python -m pip install -qq --upgrade pip
	@$(BIN)/python -m pip install -qq -e '.[$(EXTRAS)]'
	@touch $(STAMP)

## Segment the bundled sample recording with the shipped default model.
demo: $(STAMP)
	$(BIN)/ocml segment tests/data/lecture-sample.flac -o demo-output --format json,smil

## A wheel of opencast-ml (the package and the shipped model) in $(DIST)/, built in a small venv of
## its own; install it on a host without this checkout (docs/opencast.md). Extras stay optional.
wheel:
	@test -x build/wheel-env/bin/python || $(PYTHON) -m venv build/wheel-env
	@rm -rf build/lib build/bdist.*
	@build/wheel-env/bin/python -m pip wheel -qq --no-deps --wheel-dir $(DIST) .
	@ls $(DIST)/opencast_ml-*.whl

## Lint and format check (ruff, configured in pyproject.toml), then the whole test suite (starts a
## Redis server when none answers on $(REDIS_PORT); installs Xvfb and xdotool when missing).
test: $(STAMP) redis xtools lint
	$(BIN)/python -m pytest

## The edit loop: lint, then the tests that start no worker fleet, train no model, build no wheel
## and take under about 10 s each (pytest markers in setup.cfg); `make test` runs them all.
.PHONY: quick
quick: $(STAMP) redis lint
	$(BIN)/python -m pytest -m "not fleet and not train and not slow"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

redis:
	@$(BIN)/python -c "import redis,sys; redis.Redis(port=$(REDIS_PORT), socket_connect_timeout=1).ping()" 2>/dev/null \
	  || { command -v redis-server >/dev/null || apt-get install -y -q redis-server >/dev/null; \
	       redis-server --daemonize yes --bind 127.0.0.1 --port $(REDIS_PORT) --save "" --appendonly no; sleep 1; }

## The player's end-to-end tests open a real window on a virtual X display (Xvfb) and press its
## keys with xdotool.
xtools:
	@command -v Xvfb >/dev/null && command -v xdotool >/dev/null \
	  || apt-get install -y -q xvfb xdotool >/dev/null

## Speed and accuracy against the peers (benchmark-only extras; silero-vad without its torch dependency;
## ten-vad's bundled libten_vad.so needs Debian's libc++1, installed when missing).
## LiteRT rows need a model with a TFLite asset (speed.py --litert-model; the shipped calibrated
## model cannot be rebuilt with one, benchmarks/litert_model.py says how), so bench leaves them out.
## Accuracy runs on ../shared/data/dev and val and rewrites benchmarks/results/accuracy.{md,json}.
bench: $(STAMP)
	@dpkg -s libc++1 >/dev/null 2>&1 || apt-get install -y -q libc++1 >/dev/null
	$(BIN)/python -m pip install -qq -e '.[bench]'
	$(BIN)/python -m pip install -qq --no-deps silero-vad
	$(BIN)/python benchmarks/speed.py --skip-litert
	$(BIN)/python benchmarks/accuracy.py --markdown benchmarks/results/accuracy.md \
	  --json benchmarks/results/accuracy.json

## The worker image's size without Docker, as root (benchmarks/image_size.py): debootstrap of Debian
## bookworm slimmed like debian:bookworm-slim, Debian's Python 3.11, then docker/Dockerfile's steps
## in a chroot, the core and again with every extra, each proven by segmenting the sample inside;
## 4–9 minutes here, 1 GB from Debian and PyPI. Rewrites benchmarks/results/image-size.md.
image-size: $(STAMP)
	@command -v debootstrap >/dev/null || apt-get install -y -q debootstrap >/dev/null
	$(BIN)/python benchmarks/image_size.py --all-extras --markdown benchmarks/results/image-size.md

## Rebuild the default model from nothing (~2.5 h on 2 cores, resumable: run it again after an
## interruption): installs the Debian packages that `ocml-train synth` draws speech, noise and
## music from, then runs models/reproduce_default.sh: stage 1 on those, stage 2 from its weights on
## the catalogue's pinned real recordings (models/catalogue.yaml), stage 3 from stage 2's weights
## with a per-frame head on the same data. MIRROR=DIR (bare git
## repositories named owner+name) and LOCAL="name=DIR ..." serve machines without network.
TRAIN_SOURCES := espeak-ng flite festival festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts \
  festvox-italp16k festvox-itapc16k festvox-ca-ona-hts festvox-ru festvox-suopuhe-lj \
  festvox-suopuhe-mv festvox-hi-nsk festvox-mr-nsk festvox-te-nsk \
  asterisk-core-sounds-en-wav asterisk-core-sounds-en-g722 alsa-utils sound-theme-freedesktop \
  tuxpaint-stamps-default ktuberling-data hedgewars-data fluidsynth fluid-soundfont-gm
model: $(STAMP)
	apt-get install -y -q $(TRAIN_SOURCES)
	PATH="$(CURDIR)/$(BIN):$$PATH" MIRROR=$(MIRROR) LOCAL="$(LOCAL)" \
	  models/reproduce_default.sh data/reproduce

## The real-recordings yardstick: the catalogue's held-out voices, places and human sounds mixed
## into 40 labelled recordings in data/realset (benchmarks/accuracy.py reports it beside dev, val).
realset: $(STAMP)
	$(BIN)/ocml-train sources fetch data/sources $(if $(MIRROR),--mirror $(MIRROR))
	test -f data/realset/manifest.json || \
	  $(BIN)/ocml-train synth data/realset --recipe realset --sources data/sources

clean:
	rm -rf $(VENV) demo-output build dist *.egg-info
