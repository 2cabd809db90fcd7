# Tokenglass: every target sets up what it needs. `make run` and `make test` work on a fresh machine.
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed

.PHONY: setup system-deps model run test lint format bench dist selftest test-dist install clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e ".[export,dev,dist]"
	touch $(STAMP)

setup: $(STAMP)

# Fonts for CJK/emoji and the X libraries Qt needs; only where apt-get and root are available.
system-deps:
	@if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  dpkg -s fonts-noto-cjk fonts-noto-color-emoji libegl1 libxkbcommon0 libfontconfig1 >/dev/null 2>&1 || \
	  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	      fonts-noto-cjk fonts-noto-color-emoji libegl1 libgl1 libxkbcommon0 libxkbcommon-x11-0 \
	      libfontconfig1 libdbus-1-3 libxcb-cursor0 libxcb-icccm4 libxcb-keysyms1 libxcb-shape0 \
	      libxcb-xinerama0 libxcb-randr0 libxcb-render-util0 libxcb-image0 >/dev/null; }; \
	fi

# Both bundled models in the user's models folder: the default model (SmolLM2-135M-Instruct, exported
# from a GGUF) and the dates T5 (trained here, minutes); each is skipped when there and current.
model: setup
	$(BIN)/python -m model_export default

run: model system-deps
	$(BIN)/tokenglass

lint: setup
	$(BIN)/ruff format --check desktop model_export tests
	$(BIN)/ruff check desktop model_export tests
	$(BIN)/lint-imports
	$(BIN)/mypy desktop/engine

format: setup
	$(BIN)/ruff format desktop model_export tests
	$(BIN)/ruff check --fix desktop model_export tests

test: setup system-deps model lint
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest

bench: model
	$(BIN)/python -m pip install -q -e ".[bench]"
	$(BIN)/python tests/benchmarks/decode.py

dist: model
	$(BIN)/pyinstaller --noconfirm --clean build.spec

selftest: dist
	cd / && QT_QPA_PLATFORM=offscreen $(CURDIR)/dist/tokenglass/tokenglass --self-test

# The bundle's own tests (contents, size, self-test from /); CI runs this after `make test`.
test-dist: dist
	TOKENGLASS_BUNDLE=$(CURDIR)/dist/tokenglass QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest tests/packaging -s

# Linux, per user: the bundle into ~/.local/opt, a `tokenglass` command, a menu entry and its icon.
PREFIX ?= $(HOME)/.local
install: dist
	rm -rf $(PREFIX)/opt/tokenglass && mkdir -p $(PREFIX)/opt $(PREFIX)/bin
	cp -a dist/tokenglass $(PREFIX)/opt/tokenglass
	ln -sf $(PREFIX)/opt/tokenglass/tokenglass $(PREFIX)/bin/tokenglass
	mkdir -p $(PREFIX)/share/applications
	sed 's|^Exec=tokenglass|Exec=$(PREFIX)/bin/tokenglass|' assets/tokenglass.desktop \
	  > $(PREFIX)/share/applications/tokenglass.desktop
	install -Dm644 assets/icons/tokenglass-256.png $(PREFIX)/share/icons/hicolor/256x256/apps/tokenglass.png

clean:
	rm -rf build dist .pytest_cache .ruff_cache
