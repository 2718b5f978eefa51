#!/usr/bin/env bash
# Installs into a virtual environment what pip's arguments name: `install_requirements.sh VENV ARGS...`
# (make setup: `--only-binary=:all: -r requirements.txt`; the client-install test: `'.[client]'`).
#
# With uv (pip-installed into the venv first) this takes ~8 s instead of pip's ~57 s on a 2-core
# machine (benchmarks/RESULTS.md): uv downloads and unpacks wheels in parallel. It compiles no
# bytecode: that took another ~29 s for all 10,500 files, most never imported; Python writes each
# module's bytecode when it is first imported instead (the Makefile makes sure it may).
# uv does not read pip's configuration, so pip's find-links, index URLs, constraints and CA file
# (its config files and PIP_* variables, as `pip config list` shows them) are passed on: the CPU
# torch wheel lies in a find-links folder, and missing it would pull GBs of CUDA wheels instead.
# If uv cannot be had or fails, pip installs as before. Nothing is cached outside the venv.
# UV names a uv to use instead of installing one; a venv made --without-pip is installed into by
# $PYTHON's pip (python3's by default).
set -euo pipefail
venv=$1
shift
pip=("$venv/bin/pip")
[ -x "$venv/bin/pip" ] || pip=("${PYTHON:-python3}" -m pip --python "$venv/bin/python")
uv=${UV:-$venv/bin/uv}
flags=()
while IFS= read -r line; do
  key=${line%%=*}
  value=${line#*=}; value=${value#\'}; value=${value%\'}
  case "$key" in
    *.find-links) for v in $value; do flags+=(--find-links "$v"); done ;;
    *.extra-index-url) for v in $value; do flags+=(--extra-index-url "$v"); done ;;
    *.index-url) flags+=(--index-url "$value") ;;
    *.constraint) for v in $value; do flags+=(--constraint "$v"); done ;;
    *.cert) export SSL_CERT_FILE="$value" ;;
  esac
done < <("${pip[@]}" config list 2>/dev/null)

export UV_CACHE_DIR="$venv/.cache/uv"
if { [ -n "${UV:-}" ] || "${pip[@]}" install --quiet --no-cache-dir uv==0.13.9; } &&
   "$uv" pip install --python "$venv/bin/python" --quiet --index-strategy unsafe-best-match "${flags[@]}" "$@"; then
  exit 0
fi
echo "install_requirements: uv could not install $*; installing with pip instead" >&2
"${pip[@]}" install --quiet --no-cache-dir "$@"
