# The two commands of the README: `make run` (the local stack) and `make test`.
# Each creates .venv and installs what it needs on first use.
# Lambda runs python3.13: use it for .venv when the machine has it (on PATH, or installed by
# pyenv without being selected, even when pyenv is not on the PATH), else python3 (3.11+).
# A pyenv shim of a version that is not selected exists but fails, so each candidate is run,
# not just looked up.
PYTHON ?= $(shell for p in python3.13 $$(ls -d "$$(pyenv root 2>/dev/null)"/versions/3.13*/bin/python3.13 \
                                        "$${PYENV_ROOT:-$$HOME/.pyenv}"/versions/3.13*/bin/python3.13 2>/dev/null); do \
            "$$p" -c 'import sys; assert sys.version_info[:2] == (3, 13)' >/dev/null 2>&1 && { echo "$$p"; exit 0; }; done; echo python3)
VENV   := .venv
PY     := $(VENV)/bin/python
REQS   := requirements-dev.txt layers/common/requirements.txt
STAMP  := $(VENV)/.installed

.PHONY: run test soak lint unit bench key clean

# uv (from PyPI, pinned) installs the requirements in seconds where pip takes about a minute and a
# half. The venv is made without pip (ensurepip alone took 7 s) and uv put in it by the chosen
# Python's own pip (pip 22.3 or later: --python); if that Python has no such pip, or uv cannot be
# had, the venv is made again with pip, which installs the requirements itself.
# Bytecode (.pyc): every Lambda instance, pytest worker and command the tests start is a new
# interpreter, and where PYTHONDONTWRITEBYTECODE is set (this machine) nothing is ever cached:
# each would compile botocore, pydantic, Powertools... from source again (the API function's
# import: 2.5 s instead of 0.8 s). The packages those processes import are compiled at install
# (about 7 s; all of them, uv's --compile-bytecode, took 20 s); pip's fallback compiles every
# package itself. COMPILE does the same for the project's own code before the tests and the
# local stack run (it skips what is up to date).
HOT_PACKAGES = botocore aws_lambda_powertools pydantic pydantic_core requests urllib3 moto werkzeug flask jinja2 jmespath dateutil boto3 s3transfer
COMPILE = $(PY) -m compileall -q -j 0 layers functions local client/src
UV     := uv==0.13.9

$(STAMP): $(REQS)
	{ $(PYTHON) -m venv --clear --without-pip $(VENV) \
	  && PIP_ROOT_USER_ACTION=ignore $(PYTHON) -m pip --python $(PY) install --quiet --disable-pip-version-check "$(UV)" \
	  && $(VENV)/bin/uv pip install --quiet --python $(PY) -r requirements-dev.txt \
	  && site="$$($(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')" \
	  && $(PY) -m compileall -q -j 0 $(addprefix "$$site"/,$(HOT_PACKAGES)); } \
	|| { $(PYTHON) -m venv --clear $(VENV) \
	     && $(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt; }
	touch $(STAMP)

run: $(STAMP)
	$(COMPILE)
	$(PY) -m local

# two pytest workers (the machine's two cores): the end-to-end tests, which mostly wait on the
# local stack, on one of them (one stack for all), everything else on either (cfn-lint on the
# template is one of the tests: tests/unit/test_template.py). The two soak suites are not
# collected, nor the pytest plugins only they use (schemathesis's, hypothesis's, anyio's): that
# halves the collection each worker does.
SOAKS := tests/e2e/test_soak_faults.py tests/e2e/test_openapi_fuzz.py
test: $(STAMP)
	$(COMPILE)
	$(PY) -m pytest -n 2 --dist loadgroup -p no:schemathesis -p no:hypothesispytest -p no:anyio \
	  $(addprefix --ignore=,$(SOAKS))

# the fault soak and the schemathesis fuzz of the OpenAPI document (minutes each; not in make test)
soak: $(STAMP)
	$(PY) -m pytest -m soak -rP $(SOAKS)

unit: $(STAMP)
	$(PY) -m pytest tests/unit

bench: $(STAMP)
	$(PY) bench/requests_per_operation.py
	$(PY) bench/cold_start.py
	$(PY) bench/webhooks.py
	$(PY) bench/scheduler.py
	$(PY) bench/cost.py
	$(PY) bench/webhook_throughput.py
	$(PY) bench/batch_results.py

# make key ORG=acme USER=alice [TABLE=...] : create an API key in a deployed table
key: $(STAMP)
	PYTHONPATH=layers/common $(PY) -m jobsvc.keys create --organization "$(ORG)" --user "$(USER)" $(if $(TABLE),--table "$(TABLE)")

clean:
	rm -rf $(VENV) .pytest_cache .aws-sam
