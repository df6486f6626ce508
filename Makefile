# Quick start: `make plan` and `make test` (`make check`: the same minus the rehearsals, faster). Both set up .venv from the pinned requirements.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: plan plan-json test check bench rehearse clean

# Setup talks on stderr only: `make plan-json > plan.json` must hold nothing but the JSON.
$(VENV)/.requirements: requirements.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV) >&2
	@$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt >&2
	@touch $@

$(VENV)/.requirements-dev: requirements-dev.txt $(VENV)/.requirements
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	@touch $@

## Render both stacks offline, print what each declares and run the policy pack on it.
## Exit 2: a stack's config is wrong (one line per bad key on stderr); 1: a mandatory policy.
## `@`: the command line itself is not output (plan-json's stdout is the JSON document only).
plan: $(VENV)/.requirements
	@$(PY) -m tools.plan

plan-json: $(VENV)/.requirements
	@$(PY) -m tools.plan --json

## The four example projects under examples/: what each declares (routes, firewall, containers,
## jobs, buckets), each checked by the policy pack with its own policy-config.json.
## Exit codes as for plan. `make plan-all`: jamjam's two stacks and the examples, one process.
.PHONY: plan-examples plan-all
plan-examples: $(VENV)/.requirements
	@$(PY) -m tools.plan_examples

plan-all: $(VENV)/.requirements
	@$(PY) -m tools.plan_examples --with-jamjam

# The suite with the given arguments, a skip counted as a failure (tests/conftest.py).
# pytest exits 5 when it collects nothing: that must fail, not pass.
define pytest_or_fail
JAMJAM_NO_SKIP=1 $(PY) -m pytest $(1); status=$$?; \
  if [ $$status -eq 5 ]; then echo "make $@: pytest collected no tests" >&2; exit 1; fi; \
  exit $$status
endef

## Install what the tests run for real (needs root or the packages present), then run them
## all, one at a time: the whole rehearsals too (about 25 minutes). What CI runs (.ci/run).
test: $(VENV)/.requirements-dev
	bash .ci/system-packages.sh
	$(call pytest_or_fail,)

## The inner loop: everything but the whole rehearsals (marker `rehearsal`, pytest.ini), over
## CHECK_WORKERS processes. A test file goes to one worker whole, so a module's dockerd,
## PostgreSQL or S3 server starts once (docs/testing.md). About 4 minutes on 2 shared cores.
## Twice the cores: most of these tests wait on a dockerd, a timeout or a subprocess.
CHECK_WORKERS ?= 4
check: $(VENV)/.requirements-dev
	bash .ci/system-packages.sh
	$(call pytest_or_fail,-m "not rehearsal" -n $(CHECK_WORKERS) --dist loadfile)

## Print the speed and size figures (nothing asserted). The suite's times come last: they
## run `make check` and the whole `make test` (25 minutes or more).
bench: $(VENV)/.requirements-dev
	$(PY) bench/plan_speed.py
	$(PY) bench/log_archive.py
	bash .ci/system-packages.sh
	$(PY) bench/replacement_gap.py --stack $(STACK)
	$(PY) bench/suite_speed.py

## Rehearse `pulumi up` of STACK on a throwaway VPS of the Debian release the stack names
## (vpsDebianVersion) with a real Docker engine (needs root; docs/rehearsal.md).
## STACK=production by default: `make rehearse STACK=test`.
## PROJECT: jamjam (.) by default, or an example: `make rehearse PROJECT=examples/thinkring`.
STACK ?= production
PROJECT ?= .
rehearse: $(VENV)/.requirements-dev
	bash .ci/system-packages.sh
	$(PY) -m rehearsal --project $(PROJECT) --stack $(STACK)

clean:
	rm -rf $(VENV) .pytest_cache

# The component library is installed from this checkout (`-e .` in requirements.txt): a change
# to its packaging reinstalls it. (A rule of its own, so the setup recipe above stays as is.)
$(VENV)/.requirements: pyproject.toml
