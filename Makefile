# The two quick-start commands: `make demo` (main job) and `make test` (test suite).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch is pinned here, before anything can pull a CUDA torch;
# setup.cfg keeps a range so GPU users keep their own torch.
TORCH_PIN ?= torch==2.13.0

.PHONY: setup demo test lint clean

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH_PIN)"
	$(BIN)/python -m pip install -q -e ".[test,motifs,hf]"
	# fairseq pulls in a torchaudio built for another torch; nothing of ours uses it, and
	# transformers imports it whenever it is installed, then fails (docs/fairseq_notes.md #8).
	$(BIN)/python -m pip uninstall -q -y torchaudio
	touch $@

setup: $(VENV)/.installed

demo: setup
	PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/quickstart.sh

lint: setup
	$(BIN)/ruff check .

test: setup lint
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -rs

clean:
	rm -rf $(VENV) demo_out
