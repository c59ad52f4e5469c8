# The two quick-start commands: `make serve` runs the service, `make test` runs the tests.
# Both build the virtual environment first if it is missing (Python >= 3.11 and pip are all it needs).
PYTHON ?= python3
VENV := .venv
STAMP := $(VENV)/.installed

.PHONY: serve test bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --upgrade pip
	$(VENV)/bin/pip install --quiet -e ".[test]"
	touch $(STAMP)

serve: $(STAMP)
	$(VENV)/bin/rewards serve

# axe-core for the guest pages' accessibility checks (npm registry); without npm those checks skip
# outside CI (.ci/run installs npm and runs the same `npm ci`)
NPM_STAMP := tests/browser/node_modules/.installed
$(NPM_STAMP): tests/browser/package-lock.json
	if command -v npm >/dev/null 2>&1; then npm ci --prefix tests/browser --no-audit --no-fund --silent && touch $@; \
	else echo "npm not found: the guest pages' accessibility checks will be skipped"; fi

# the types first (mypy, configured in pyproject.toml: a few seconds), then the whole suite
test: $(STAMP) $(NPM_STAMP)
	$(VENV)/bin/mypy
	$(VENV)/bin/pytest

# The embedded PostgreSQL runs from binaries inside .venv: stop it (the tests' and the default
# data folder's) before they are deleted. --force: whatever still uses it loses its database.
clean:
	if [ -x $(VENV)/bin/rewards ]; then \
	  $(VENV)/bin/rewards db stop --force --data-dir .pytest-pg; \
	  $(VENV)/bin/rewards db stop --force; \
	fi
	rm -rf $(VENV) .pytest_cache .pytest-pg
