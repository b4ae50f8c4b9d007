# The two quick-start commands: `make demo` (main job) and `make test` (test suite).
# Each stage says what it does in one line; pip's own output stays quiet (-q) unless it fails.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch is pinned here, before anything can pull a CUDA torch;
# setup.cfg keeps a range so GPU users keep their own torch.
TORCH_PIN ?= torch==2.13.0

.PHONY: setup demo test lint clean

$(VENV)/.installed: setup.cfg pyproject.toml
	@echo "== setup 1/4: creating the virtual environment $(VENV)/ with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/python -m pip install -q --upgrade pip
	@echo "== setup 2/4: installing $(TORCH_PIN), the CPU build (about 200 MB)"
	@$(BIN)/python -m pip install -q "$(TORCH_PIN)"
	@echo "== setup 3/4: installing this package (editable) with fairseq, transformers and the test tools"
	@$(BIN)/python -m pip install -q -e ".[test,motifs,hf]"
	@# fairseq pulls in a torchaudio built for another torch; nothing of ours uses it, and
	@# transformers imports it whenever it is installed, then fails (docs/fairseq_notes.md #8).
	@echo "== setup 4/4: removing torchaudio (it cannot load beside this torch, and transformers would import it)"
	@$(BIN)/python -m pip uninstall -q -y torchaudio
	@touch $@
	@echo "== setup done: $(VENV)/ (run commands with $(BIN)/ first on PATH)"

setup: $(VENV)/.installed

demo: setup
	@PATH="$(CURDIR)/$(BIN):$$PATH" bash examples/quickstart.sh

lint: setup
	@echo "== ruff check ."
	@$(BIN)/ruff check .

test: setup lint
	@echo "== pytest: the whole suite, about 15-20 min on 2 cores (pytest -m 'not slow' skips the training runs)"
	@PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest -q -rs

clean:
	rm -rf $(VENV) demo_out
