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
	if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then git config core.hooksPath .githooks; fi

# Which torch build `make env` installs into an environment that has none: cpu (from PyTorch's
# CPU wheel index: no CUDA libraries) or cuda (PyPI's default Linux build, with NVIDIA's CUDA
# wheels). Default: cuda where `nvidia-smi` is found, else cpu. A torch already installed in
# $(VENV) is kept, whatever TORCH says (to switch builds: make clean, then make env TORCH=...).
TORCH ?= $(if $(shell command -v nvidia-smi 2>/dev/null),cuda,cpu)
TORCH_INDEX_cpu := https://download.pytorch.org/whl/cpu
TORCH_INDEX_cuda :=
TORCH_INDEX ?= $(TORCH_INDEX_$(TORCH))
# pip's options for torch: an unreachable index fails in about a minute instead of retrying for
# many; offline, a local wheel: TORCH_PIP_ARGS="--no-index --find-links DIR" (README.md).
TORCH_PIP_ARGS ?= --timeout 20 --retries 2

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -c "import torch" 2>/dev/null || \
		$(PY) -m pip install "torch>=2.2" $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX)) \
			$(TORCH_PIP_ARGS)
	$(PY) -m pip install -e ".[test]"
	touch $(STAMP)

# Options for JupyterLab, e.g. make lab LAB_ARGS="--no-browser --ip 0.0.0.0 --port 8888".
LAB_ARGS ?=
# JupyterLab refuses to start as root (Docker images, JupyterHub containers, cloud notebooks)
# unless told --allow-root.
LAB_UID := $(shell id -u 2>/dev/null)

# Rooted at the checkout, so that notebooks/ (where the file browser opens) and release/ (the
# student copies) are both reachable; nbgrader_config.py here silences nbgrader's config warning.
LAB := $(PY) -m jupyterlab --ServerApp.root_dir=. $(if $(filter 0,$(LAB_UID)),--allow-root)

lab: env  ## open the course in JupyterLab (options: LAB_ARGS="...")
	$(LAB) --ContentsManager.preferred_dir=notebooks $(LAB_ARGS)

# The release as a student sees it: nbgrader's menu, Validate button and teacher panels are off
# (student/README.md); the file browser opens in release/.
.PHONY: student-lab
student-lab: student  ## open the student copies in JupyterLab without nbgrader's teacher UI
	JUPYTER_CONFIG_PATH="$(CURDIR)/student/jupyter" $(LAB) --ContentsManager.preferred_dir=release \
		$(LAB_ARGS)

lint: env
	$(PY) -m ruff check bplf tests notebooks

test: env lint  ## every test: the package's unit tests, then every notebook in quick mode
	$(TEST_ENV) $(PY) -m pytest -n $(WORKERS) --dist loadfile --nbval-lax --nbval-current-env \
		tests notebooks

# Cells tagged "dataset-faces" show faces from the licensed datasets (their terms forbid
# redistributing the images): strip-notebooks drops their outputs, saved widget state, widget
# views, attachments and any image in metadata, and fails if an image it cannot remove is left.
NOTEBOOKS ?= $(wildcard notebooks/0*.ipynb)
notebooks: export BPLF_PROGRESS = 0
notebooks: env  ## re-execute notebooks in full mode, keeping outputs (for committing)
	for nb in $(NOTEBOOKS); do \
		$(PY) -m jupyter nbconvert --to notebook --execute --inplace \
			--ExecutePreprocessor.timeout=3600 "$$nb" && \
		$(PY) -m bplf strip-notebooks "$$nb" \
		|| exit 1; done

# The student release (docs/teaching.md): nbgrader replaces each exercise's solution by a stub
# and removes hidden tests and outputs; written to release/ (ignored by git).
.PHONY: student
student: env  ## write the student notebooks into release/
	$(PY) -m bplf student --out release

# Grade a folder of submissions (docs/teaching.md): SUBMISSIONS holds STUDENT/ASSIGNMENT/*.ipynb
# (nbgrader's submitted/), STUDENT/*.ipynb or *.ipynb; grades.csv and feedback/ go to GRADED.
SUBMISSIONS ?= submitted
GRADED ?= graded
GRADE_ARGS ?=
.PHONY: grade
grade: env  ## grade SUBMISSIONS (default submitted/) into GRADED (default graded/)
	$(PY) -m bplf grade "$(SUBMISSIONS)" --out "$(GRADED)" $(GRADE_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
