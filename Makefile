# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test producers wheel-test lint schemas docs bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)

# torch first, pinned to the CPU build, so that no extra can pull a CUDA build.
$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==2.13.0"
	$(PY) -m pip install --quiet -e ".[runtime,test]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(PY) examples/demo.py

# The producer suite: each producer runs in its own virtual environment (msModelSlim wants an
# older transformers) and writes its exports under .cache/producers; the tests read the files.
PRODUCERS := .cache/producers

# $(call producer,NAME,VENV,REQUIREMENTS,JOB,CASES): the venv (torch CPU first, so that no
# requirement can pull a CUDA build) and the exports of one producer, rebuilt when the job, the
# cases or the pins change.
define producer
$(2)/.installed: $(3)
	$(PYTHON) -m venv $(2)
	$(2)/bin/python -m pip install --quiet --upgrade pip
	$(2)/bin/python -m pip install --quiet "torch==2.13.0"
	$(2)/bin/python -m pip install --quiet -r $(3)
	touch $$@

$(PRODUCERS)/$(1)/.done: $(2)/.installed $(4) $(5)
	rm -rf $(PRODUCERS)/$(1)
	mkdir -p $(PRODUCERS)
	$(2)/bin/python $(4) $(PRODUCERS)/$(1) > $(PRODUCERS)/$(1).log 2>&1 || (tail -40 $(PRODUCERS)/$(1).log; exit 1)
	grep '^\[$(1)\]' $(PRODUCERS)/$(1).log
	touch $$@
endef

MS_VENV := .venv-msmodelslim
HF_VENV := .venv-hfproducers
P := tests/producers
$(eval $(call producer,msmodelslim,$(MS_VENV),$(P)/msmodelslim-requirements.txt,$(P)/msmodelslim_job.py,$(P)/ms_cases.py))
$(eval $(call producer,hf,$(HF_VENV),$(P)/hf-requirements.txt,$(P)/hf_job.py,$(P)/hf_cases.py))

producers: $(PRODUCERS)/msmodelslim/.done $(PRODUCERS)/hf/.done

# The wheel as users get it: built, installed into a fresh venv outside the repository, checked
# plain (no torch: validate and plan read the schemas and matrix as package data) and with the
# runtime extra (every shipped module imports; load_quantized runs the example).
WHEEL_VENV := .cache/wheel-venv
EXAMPLE := $(CURDIR)/examples/tiny-llama-w8a8-dynamic

wheel-test: $(STAMP)
	rm -rf .cache/dist $(WHEEL_VENV)
	$(PY) -m pip wheel --quiet --no-deps -w .cache/dist .
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install --quiet .cache/dist/quantspec-*.whl
	cd /tmp && $(CURDIR)/$(WHEEL_VENV)/bin/python $(CURDIR)/tools/wheel_check.py lean $(EXAMPLE)
	cd /tmp && $(CURDIR)/$(WHEEL_VENV)/bin/quantspec validate $(EXAMPLE) > /dev/null
	$(WHEEL_VENV)/bin/python -m pip install --quiet "torch==2.13.0"
	$(WHEEL_VENV)/bin/python -m pip install --quiet "$$(ls .cache/dist/quantspec-*.whl)[runtime]"
	cd /tmp && $(CURDIR)/$(WHEEL_VENV)/bin/python $(CURDIR)/tools/wheel_check.py runtime $(EXAMPLE)

test: $(STAMP) producers wheel-test
	QUANTSPEC_REQUIRE_PRODUCERS=1 $(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check quantspec testkit tests bench examples tools
	$(VENV)/bin/mypy

schemas: $(STAMP)
	$(PY) -m tools.schemas_export

docs: $(STAMP)
	$(VENV)/bin/quantspec docs

clean:
	rm -rf $(VENV) $(MS_VENV) $(HF_VENV) .cache build dist *.egg-info
