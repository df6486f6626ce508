# Quick start: `make plan` and `make test`. Both set up .venv from the pinned requirements.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: plan plan-json test bench rehearse clean

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

## Install what the tests run for real (needs root or the packages present), then run them.
## pytest exits 5 when it collects nothing: that must fail, not pass.
test: $(VENV)/.requirements-dev
	bash .ci/system-packages.sh
	JAMJAM_NO_SKIP=1 $(PY) -m pytest; status=$$?; \
	  if [ $$status -eq 5 ]; then echo "make test: pytest collected no tests" >&2; exit 1; fi; \
	  exit $$status

## Print the speed and size figures (nothing asserted).
bench: $(VENV)/.requirements-dev
	$(PY) bench/plan_speed.py
	$(PY) bench/log_archive.py
	bash .ci/system-packages.sh
	$(PY) bench/replacement_gap.py --stack $(STACK)

## Rehearse `pulumi up` of STACK on a throwaway VPS of the Debian release the stack names
## (vpsDebianVersion) with a real Docker engine (needs root; README "Rehearsal").
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
