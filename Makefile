# Two entry points for a fresh machine: `make demo` and `make test`.
PYTHON ?= python3.11
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: install demo test producers lint schemas docs bench clean

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
	$(PY) -m quantspec.demo

# The producer suite: each producer runs in its own virtual environment (msModelSlim wants an
# older transformers) and writes its exports under .cache/producers; the tests read the files.
PRODUCERS := .cache/producers
MS_VENV   := .venv-msmodelslim
MS_REQS   := tests/producers/msmodelslim-requirements.txt
MS_STAMP  := $(PRODUCERS)/msmodelslim/.done

$(MS_VENV)/.installed: $(MS_REQS)
	$(PYTHON) -m venv $(MS_VENV)
	$(MS_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MS_VENV)/bin/python -m pip install --quiet "torch==2.13.0"
	$(MS_VENV)/bin/python -m pip install --quiet -r $(MS_REQS)
	touch $@

$(MS_STAMP): $(MS_VENV)/.installed tests/producers/msmodelslim_job.py tests/producers/ms_cases.py
	rm -rf $(PRODUCERS)/msmodelslim
	mkdir -p $(PRODUCERS)
	$(MS_VENV)/bin/python tests/producers/msmodelslim_job.py $(PRODUCERS)/msmodelslim > $(PRODUCERS)/msmodelslim.log 2>&1 \
		|| (tail -40 $(PRODUCERS)/msmodelslim.log; exit 1)
	grep '^\[msmodelslim\]' $(PRODUCERS)/msmodelslim.log
	touch $@

HF_VENV   := .venv-hfproducers
HF_REQS   := tests/producers/hf-requirements.txt
HF_STAMP  := $(PRODUCERS)/hf/.done

$(HF_VENV)/.installed: $(HF_REQS)
	$(PYTHON) -m venv $(HF_VENV)
	$(HF_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(HF_VENV)/bin/python -m pip install --quiet "torch==2.13.0"
	$(HF_VENV)/bin/python -m pip install --quiet -r $(HF_REQS)
	touch $@

$(HF_STAMP): $(HF_VENV)/.installed tests/producers/hf_job.py tests/producers/hf_cases.py
	rm -rf $(PRODUCERS)/hf
	mkdir -p $(PRODUCERS)
	$(HF_VENV)/bin/python tests/producers/hf_job.py $(PRODUCERS)/hf > $(PRODUCERS)/hf.log 2>&1 \
		|| (tail -40 $(PRODUCERS)/hf.log; exit 1)
	grep '^\[hf\]' $(PRODUCERS)/hf.log
	touch $@

producers: $(MS_STAMP) $(HF_STAMP)

test: $(STAMP) producers
	QUANTSPEC_REQUIRE_PRODUCERS=1 $(PY) -m pytest -q -p no:cacheprovider

lint: $(STAMP)
	$(VENV)/bin/ruff check quantspec tests bench examples
	$(VENV)/bin/mypy

schemas: $(STAMP)
	$(PY) -m quantspec.schemas_export

docs: $(STAMP)
	$(VENV)/bin/quantspec docs

clean:
	rm -rf $(VENV) $(MS_VENV) $(HF_VENV) .cache build dist *.egg-info
