#!/usr/bin/env bash
# Installs `tritonserver` and `perf_analyzer` launchers into a virtual environment, so that
# after `source .venv/bin/activate` both commands work as they do on a GPU host.
#
# The server is the tritonserver 2.51 binary bundled in the nvidia-pytriton wheel (Python
# backend only). The launcher supplies what that copy lacks: a backend directory holding the
# Python stub for this interpreter, PATH (the stub runs Python in isolated mode and finds the
# venv's packages through PATH) and LD_LIBRARY_PATH (the wheel's libraries, and the
# interpreter's own libpython so the stub does not pick up the system's).
set -euo pipefail
venv=$(cd "${1:-.venv}" && pwd)
py="$venv/bin/python"
sp=$("$py" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
pyver=$("$py" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
pylib=$("$py" -c 'import sysconfig; print(sysconfig.get_config_var("LIBDIR"))')
triton="$sp/pytriton/tritonserver"
libs="$sp/nvidia_pytriton.libs"
[ -x "$triton/bin/tritonserver" ] || { echo "install_launchers: $triton/bin/tritonserver not found (is nvidia-pytriton installed in $venv?)" >&2; exit 1; }

# Backend directory with the stub of this Python version beside the python backend library.
backends="$venv/share/triton/backends"
if [ ! -x "$backends/python/triton_python_backend_stub" ]; then
  rm -rf "$backends" && mkdir -p "$(dirname "$backends")"
  cp -r "$triton/backends" "$backends"
  cp "$triton/python_backend_stubs/$pyver/triton_python_backend_stub" "$backends/python/"
fi

# perf_analyzer (tritonclient 2.51 wheel) needs libb64.so.0d and libcudart.so.12, which the
# nvidia-pytriton wheel ships under hashed names: expose them under their plain names.
plainlibs="$venv/share/triton/lib"
mkdir -p "$plainlibs"
for pair in "libb64-*.so.0d:libb64.so.0d" "libcudart-*.so.12*:libcudart.so.12"; do
  pattern=${pair%%:*}; name=${pair##*:}
  found=$(ls "$libs"/$pattern 2>/dev/null | head -n 1 || true)
  [ -n "$found" ] && ln -sf "$found" "$plainlibs/$name"
done
ld_path="$libs:$pylib:$plainlibs"

cat > "$venv/bin/tritonserver" <<LAUNCHER
#!/usr/bin/env bash
# Launcher written by packaging/install_launchers.sh: the nvidia-pytriton tritonserver binary.
export PATH="$venv/bin:\$PATH"
export LD_LIBRARY_PATH="$ld_path\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
for arg in "\$@"; do
  case "\$arg" in --backend-directory*) exec "$triton/bin/tritonserver" "\$@";; esac
done
exec "$triton/bin/tritonserver" --backend-directory "$backends" "\$@"
LAUNCHER
chmod +x "$venv/bin/tritonserver"

pa_real="$sp/tritonclient/bin/perf_analyzer"
[ -x "$pa_real" ] || pa_real=$(ls "$venv"/bin/perf_analyzer.real 2>/dev/null || true)
if [ -x "$venv/bin/perf_analyzer" ] && ! grep -q "install_launchers" "$venv/bin/perf_analyzer" 2>/dev/null; then
  mv "$venv/bin/perf_analyzer" "$venv/bin/perf_analyzer.real"
  pa_real="$venv/bin/perf_analyzer.real"
fi
if [ -n "$pa_real" ] && [ -x "$pa_real" ]; then
  cat > "$venv/bin/perf_analyzer" <<LAUNCHER
#!/usr/bin/env bash
# Launcher written by packaging/install_launchers.sh: tritonclient's perf_analyzer.
export LD_LIBRARY_PATH="$ld_path\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec "$pa_real" "\$@"
LAUNCHER
  chmod +x "$venv/bin/perf_analyzer"
fi
echo "launchers: $venv/bin/tritonserver${pa_real:+, $venv/bin/perf_analyzer}"
