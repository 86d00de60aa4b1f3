#!/usr/bin/env bash
# Bench setup step (not part of the test suite): build llama.cpp's own `llama-server`
# from the llama.cpp source that the installed llama-cpp-python's sdist vendors, so
# bench/bench_peer.py compares Hearth with the exact same llama.cpp revision.
#
# Usage: bench/build_llama_server.sh [BUILD_DIR]     (default: ~/.cache/hearth/llama-server)
# Env:   PYTHON (default /work/venv/bin/python or python3), JOBS (default: nproc)
# Prints the path of the built binary on its last line.
#
# The build is native (-march=native through GGML_NATIVE, as llama-cpp-python's own pip build
# is), so it is kept per llama-cpp-python version *and* per CPU: a cache directory carried to
# another machine (a shared home, a copied ~/.cache) builds again instead of dying of SIGILL.
set -euo pipefail

PYTHON="${PYTHON:-$(command -v /work/venv/bin/python || command -v python3)}"
BUILD_ROOT="${1:-${HOME}/.cache/hearth/llama-server}"
JOBS="${JOBS:-$(nproc)}"

version="$("$PYTHON" -c 'import importlib.metadata as m; print(m.version("llama_cpp_python"))')"
# The CPU's model name and instruction-set flags, which are what -march=native compiles for.
cpu="$( (grep -m1 '^model name' /proc/cpuinfo && grep -m1 '^flags' /proc/cpuinfo) 2>/dev/null || uname -m)"
cpu_key="$(printf '%s' "$cpu" | sha256sum | cut -c1-12)"
src_root="${BUILD_ROOT}/${version}-${cpu_key}"
binary="${src_root}/build/bin/llama-server"
if [[ -x "$binary" ]]; then
    echo "already built: llama-cpp-python ${version}" >&2
    echo "$binary"
    exit 0
fi
mkdir -p "$src_root"

sdist_dir="${src_root}/sdist"
if ! compgen -G "${sdist_dir}/llama_cpp_python-*.tar.gz" >/dev/null; then
    # The sdist, not a wheel: only the sdist carries llama.cpp's tools/server sources.
    "$PYTHON" -m pip download "llama-cpp-python==${version}" --no-binary :all: --no-deps \
        --dest "$sdist_dir" >&2
fi
tarball="$(compgen -G "${sdist_dir}/llama_cpp_python-*.tar.gz" | head -n1)"
tar -xzf "$tarball" -C "$src_root"
llama_src="$(compgen -G "${src_root}/llama_cpp_python-*/vendor/llama.cpp" | head -n1)"

cmake_bin="$(command -v cmake || true)"
if [[ -z "$cmake_bin" ]]; then
    "$PYTHON" -m pip install --quiet cmake
    cmake_bin="$("$PYTHON" -c 'import cmake, os; print(os.path.join(cmake.CMAKE_BIN_DIR, "cmake"))')"
fi

# Out of the box, CPU only, tuned for this machine like llama-cpp-python's own build.
"$cmake_bin" -S "$llama_src" -B "${src_root}/build" -DCMAKE_BUILD_TYPE=Release \
    -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF \
    -DLLAMA_BUILD_SERVER=ON -DBUILD_SHARED_LIBS=OFF >&2
"$cmake_bin" --build "${src_root}/build" --config Release --target llama-server -j "$JOBS" >&2
echo "$binary"
