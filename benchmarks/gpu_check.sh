#!/usr/bin/env bash
# Every CUDA test and the GPU benchmarks in one go (issue 18), within 8 minutes on one GPU.
#
#   benchmarks/gpu_wheels.sh          # once, on a machine with a package index: fills .whl/
#   benchmarks/gpu_check.sh           # on the GPU machine, from the repository root
#
# With the device tool: run it with carry [".whl"] and the command `bash benchmarks/gpu_check.sh`;
# results go to $OUT (else benchmarks/results/), to be committed as benchmarks/results/gpu_check*:
#   gpu_check_env.txt     GPU, driver, torch
#   gpu_check_tests.txt   the CUDA tests' log; its last line is pytest's summary
#   gpu_check_summary.txt that summary line alone
#   gpu_check_bench.json  benchmarks/gpu_throughput.py (scorer, single customer, reasons, training)
#   gpu_check_bench.log   its progress
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-benchmarks/results}
mkdir -p "$OUT"
PY=${PY:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
if compgen -G ".whl/*.whl" >/dev/null; then
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
  "$PY" -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda,
            "available", torch.cuda.is_available())'; } > "$OUT/gpu_check_env.txt"
cat "$OUT/gpu_check_env.txt"

# The CUDA tests (skipped without a GPU elsewhere) and the CPU guards beside them.
timeout 240 "$PY" -m pytest -q -p no:cacheprovider -o addopts="-ra --import-mode=importlib" \
  -m "not integration" -k "not promote" tests/model/test_cuda.py tests/model/test_serving.py \
  tests/model/test_fused.py tests/model/test_attribution.py tests/model/test_devices.py \
  tests/stream/test_scorer.py tests/training/test_train.py \
  tests/crmrisk/commands/test_train_command.py 2>&1 | tee "$OUT/gpu_check_tests.txt"
tail -n 1 "$OUT/gpu_check_tests.txt" > "$OUT/gpu_check_summary.txt"

timeout 300 "$PY" -m benchmarks.gpu_throughput --device cuda --out "$OUT/gpu_check_bench.json" \
  2>&1 | tee "$OUT/gpu_check_bench.log"
echo "tests: $(cat "$OUT/gpu_check_summary.txt")"
