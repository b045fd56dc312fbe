# The course's task runner. `make lab` and `make test` are the two commands in README.md.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.bplf-installed
# One torch thread per test worker: two workers with default threads on two cores ran ~10x slower.
TEST_ENV := BPLF_QUICK=1 OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 MPLBACKEND=Agg
WORKERS ?= 2

.PHONY: env lab test lint notebooks clean

env: $(STAMP)  ## create the virtual environment with the package and its test tools

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -e ".[test]"
	touch $(STAMP)

lab: env  ## open the course in JupyterLab
	$(PY) -m jupyterlab notebooks/

lint: env
	$(PY) -m ruff check bplf tests notebooks

test: env lint  ## every test: the package's unit tests, then every notebook in quick mode
	$(TEST_ENV) $(PY) -m pytest -n $(WORKERS) --dist loadfile --nbval-lax --nbval-current-env \
		tests notebooks

# Cells tagged "dataset-faces" show faces from the licensed datasets: their outputs are
# stripped before committing (the datasets' terms forbid redistributing their images).
NOTEBOOKS ?= $(wildcard notebooks/0*.ipynb)
notebooks: export BPLF_PROGRESS = 0
notebooks: env  ## re-execute notebooks in full mode, keeping outputs (for committing)
	for nb in $(NOTEBOOKS); do \
		$(PY) -m jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=3600 "$$nb" && \
		$(PY) -m jupyter nbconvert --to notebook --inplace --TagRemovePreprocessor.enabled=True \
			--TagRemovePreprocessor.remove_all_outputs_tags='["dataset-faces"]' "$$nb" \
		|| exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
