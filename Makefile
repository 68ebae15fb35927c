# Set-up on a fresh Debian machine is part of every target: the first run installs the Debian
# packages (as root, or through sudo) and a virtualenv in .venv/; later runs only re-check them.

VENV        := .venv
PYTHON      := $(VENV)/bin/python
SYSTEM_PY   ?= python3
APT_PACKAGES := python3-venv python3-dev gcc portaudio19-dev libasound2-plugins alsa-utils systemd \
                espeak-ng sox libspeexdsp1 apertium apertium-eng-spa apertium-eng-cat nodejs \
                chromium chromium-driver haproxy
SUDO        := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo test test-fast lint bench deps apt-deps deb deb-deps clean

demo: deps
	$(VENV)/bin/parley demo

# pytest exits 5 when it collects no tests (e.g. a filtered run); that is not a failure.
test: deps
	$(PYTHON) -m pytest || [ $$? -eq 5 ]

# Everything but the tests that start a real gateway (marked slow; tests/conftest.py): about a minute.
test-fast: deps
	$(PYTHON) -m pytest -m "not slow" || [ $$? -eq 5 ]

# ruff (pyflakes, bugbear) and mypy on the product code, as configured in pyproject.toml; no new errors.
lint: deps
	$(VENV)/bin/ruff check agent gateway parley_common bench tests
	$(VENV)/bin/mypy

bench: deps
	$(PYTHON) bench/frontend.py --quick

# The official JavaScript Speech SDK, a client in the test suite (tests/gateway/test_js_sdk.py).
JS_SDK      := tests/js/node_modules/.installed

deps: apt-deps $(VENV)/.installed $(JS_SDK)

# $(call apt_ensure,PACKAGES): install those of PACKAGES that are not installed yet.
apt_ensure = @missing=$$(for p in $(1); do dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "installing Debian packages:" $$missing; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

apt-deps:
	$(call apt_ensure,$(APT_PACKAGES))

$(VENV)/.installed: setup.cfg pyproject.toml
	[ -x $(PYTHON) ] || $(SYSTEM_PY) -m venv $(VENV)
	$(PYTHON) -m pip install -q --upgrade pip
	$(PYTHON) -m pip install -q -e '.[agent,gateway,test,bench]'
	# silero-vad's wheel carries the ONNX model we run with onnxruntime; its torch dependency is not needed.
	$(PYTHON) -m pip install -q --no-deps silero-vad
	touch $@

# Debian's nodejs comes without npm; NodeSource's carries its own (and conflicts with Debian's npm).
$(JS_SDK): tests/js/package.json tests/js/package-lock.json
	command -v npm >/dev/null || ($(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq npm)
	cd tests/js && npm ci --no-audit --no-fund
	touch $@

# Debian packages parley-agent and parley-gateway for this machine's architecture, into dist/.
# Built from a copy of the tree (without .venv and other local state) by dpkg-buildpackage, with
# dh-virtualenv pip-installing each program's extra from PyPI into /opt/venvs/PACKAGE.
DEB_BUILD_PACKAGES := debhelper dh-virtualenv python3-venv python3-dev gcc portaudio19-dev rsync
DEB_STAGE := build/deb

deb: deb-deps
	rm -rf $(DEB_STAGE) && mkdir -p $(DEB_STAGE)/parley dist
	rsync -a --exclude=/.venv --exclude=/build --exclude=/dist --exclude=/out --exclude=.git \
		--exclude=node_modules --exclude=__pycache__ --exclude='*.egg-info' ./ $(DEB_STAGE)/parley/
	cd $(DEB_STAGE)/parley && dpkg-buildpackage -b -us -uc
	mv $(DEB_STAGE)/parley-*.deb dist/
	@ls -l dist/parley-*.deb

deb-deps:
	$(call apt_ensure,$(DEB_BUILD_PACKAGES))

clean:
	rm -rf $(VENV) build dist *.egg-info tests/js/node_modules
