#!/usr/bin/env bash
# Installs a requirements file into a virtual environment: `install_requirements.sh VENV FILE`.
#
# With uv (pip-installed into the venv first) this takes ~8 s instead of pip's ~57 s on a 2-core
# machine (benchmarks/RESULTS.md): uv downloads and unpacks wheels in parallel. It compiles no
# bytecode: that took another ~29 s for all 10,500 files, most never imported; Python writes each
# module's bytecode when it is first imported instead (the Makefile makes sure it may).
# uv does not read pip's configuration, so pip's find-links, index URLs, constraints and CA file
# (its config files and PIP_* variables, as `pip config list` shows them) are passed on: the CPU
# torch wheel lies in a find-links folder, and missing it would pull GBs of CUDA wheels instead.
# If uv cannot be had or fails, pip installs as before. Nothing is cached outside the venv.
set -euo pipefail
venv=$1
requirements=$2
pip="$venv/bin/pip"
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
done < <("$pip" config list 2>/dev/null)

export UV_CACHE_DIR="$venv/.cache/uv"
if "$pip" install --quiet --no-cache-dir uv==0.13.9 &&
   "$venv/bin/uv" pip install --python "$venv/bin/python" --quiet --only-binary=:all: \
     --index-strategy unsafe-best-match "${flags[@]}" -r "$requirements"; then
  exit 0
fi
echo "install_requirements: uv could not install $requirements; installing with pip instead" >&2
"$pip" install --quiet --no-cache-dir --only-binary=:all: -r "$requirements"
