# kandanim — every target creates the virtual environment when it is missing.
VENV   ?= .venv
PYTHON ?= python3
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed-stamp
export HF_HUB_OFFLINE ?= 1

.PHONY: install demo test bench lint contact-sheet gallery clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# the CPU build of torch first: an unpinned torch pulls a multi-GB CUDA build
	$(PY) -m pip install --quiet torch==2.13.0
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(VENV)/bin/kandanim render scenes/demo.yaml --engine preview -o out/demo.mp4

contact-sheet: install
	$(PY) -m kandanim.tools.contact_sheet out/demo.mp4 docs/demo-contact-sheet.png

# the README's pictures: a clip of every effect and the demo's camera plot (docs/, ~4 MB)
gallery: install
	$(VENV)/bin/kandanim effects --gallery docs/gallery
	$(VENV)/bin/kandanim plan scenes/demo.yaml --plot docs/demo-plan.png

test: install
	$(PY) -m pytest -n 2 --dist loadgroup

bench: install
	$(PY) -m benchmarks

lint: install
	$(VENV)/bin/ruff check kandanim tests benchmarks

clean:
	rm -rf out .pytest_cache
