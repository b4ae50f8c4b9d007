#!/usr/bin/env bash
# Wheels that benchmarks/gpu_check.py installs offline on a GPU machine whose image has a CUDA torch but no fairseq
# and no package index (the lent H200: Python 3.12, x86-64; see docs/gpu.md). Run it where pip works, from the
# repository root; it fills .whl/ (git-ignored, about 26 MB) with fairseq and what fairseq and this package need
# beyond that image, at the versions installed here.
# Usage: bash benchmarks/gpu_wheels.sh [DIR (default .whl)] [PYTHON_VERSION (default 3.12)]
set -euo pipefail
DIR=${1:-.whl}
PY=${2:-3.12}
PYTHON=${PYTHON:-python3}
version() { "$PYTHON" -c "import importlib.metadata as m; print(m.version('$1'))"; }
mkdir -p "$DIR"
PLATFORMS=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_24_x86_64 manylinux_2_17_x86_64 \
         manylinux2014_x86_64 manylinux1_x86_64; do
    PLATFORMS+=(--platform "$p")
done
# Binary wheels for the GPU machine's Python (fairseq and pysam have compiled parts).
"$PYTHON" -m pip download -q --no-deps --only-binary=:all: --python-version "$PY" --implementation cp \
    "${PLATFORMS[@]}" -d "$DIR" \
    "ve-fairseq==$(version ve-fairseq)" "pysam==$(version pysam)" "bitarray==$(version bitarray)" \
    "hydra-core==$(version hydra-core)" "omegaconf==$(version omegaconf)" \
    "cffi==$(version cffi)" "pycparser==$(version pycparser)"
# antlr4-python3-runtime 4.9.3 (what omegaconf 2.3 needs) is published as source only: build its pure-Python wheel.
"$PYTHON" -m pip wheel -q --no-deps -w "$DIR" "antlr4-python3-runtime==$(version antlr4-python3-runtime)"
ls -l "$DIR"
du -sh "$DIR"
