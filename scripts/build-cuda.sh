#!/usr/bin/env bash
# Builds crossbrief with candle's CUDA backend on any Linux x86_64 machine, GPU or not, with
# NVIDIA's compiler from PyPI (no system CUDA toolkit needed): nvcc, cicc/NVVM, the runtime
# headers and libraries and CCCL, CUDA 13.0, installed into a throwaway virtualenv.
# The binary lands in target/cuda/release/crossbrief; run it with `--device cuda` on a
# machine with an NVIDIA driver.
# Usage: scripts/build-cuda.sh [COMPUTE_CAP]   (default $CUDA_COMPUTE_CAP, else 80: sm_80 PTX
#        runs on Ampere and newer, H100/H200 included)
set -euo pipefail
cd "$(dirname "$0")/.."
export CUDA_COMPUTE_CAP=${1:-${CUDA_COMPUTE_CAP:-80}}
venv=target/cuda-venv
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/pip" install --quiet --disable-pip-version-check \
  "nvidia-cuda-nvcc==13.0.88" "nvidia-nvvm==13.0.88" "nvidia-cuda-runtime==13.0.96" \
  "nvidia-cuda-crt==13.0.88" "nvidia-cuda-cccl==13.0.85" "nvidia-cuda-nvrtc==13.0.88" \
  "nvidia-cublas==13.0.2.14" "nvidia-curand==10.4.0.35"
root=$("$venv/bin/python" -c 'import nvidia, os; print(os.path.join(nvidia.__path__[0], "cu13"))')
# The wheels ship versioned shared objects only; the linker wants the plain names.
for so in libcudart.so.13 libnvrtc.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10; do
  [ -e "$root/lib/${so%.*}" ] || ln -s "$so" "$root/lib/${so%.*}"
done
export CUDA_ROOT=$root CUDA_PATH=$root CUDA_HOME=$root CUDA_TOOLKIT_ROOT_DIR=$root
export PATH="$root/bin:$PATH"
export LIBRARY_PATH="$root/lib:${LIBRARY_PATH:-}"
echo "nvcc: $(nvcc --version | tail -1); compute capability $CUDA_COMPUTE_CAP"
# The library first (candle's CUDA kernels included); then a link stub for the driver library,
# as the CUDA toolkit's lib64/stubs/libcuda.so is: it defines the driver entry points cudarc
# calls, so the binary can be linked where no NVIDIA driver is installed; at run time the
# driver's own libcuda.so.1 is loaded instead.
cargo build --release --locked --features cuda --target-dir target/cuda --lib
stubs=target/cuda/stubs
mkdir -p "$stubs"
nm target/cuda/release/deps/libcudarc-*.rlib 2>/dev/null | awk '$1 == "U" && $2 ~ /^cu[A-Z]/ {print $2}' | sort -u \
  | sed 's/.*/void &(void) {}/' > "$stubs/libcuda.c"
cc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$stubs/libcuda.so" "$stubs/libcuda.c"
export LIBRARY_PATH="$PWD/$stubs:$LIBRARY_PATH"
cargo build --release --locked --features cuda --target-dir target/cuda
ls -la target/cuda/release/crossbrief
