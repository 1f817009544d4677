#!/usr/bin/env bash
# Every figure of the GPU table in benchmarks/README.md, in one command on a CUDA machine:
#   bash benchmarks/gpu_suite.sh RESULTS_DIR
# RESULTS_DIR receives: device.txt (the GPU), tests.log (the CUDA tests), bench.md (seqrec next to the
# plain implementation on the MovieLens-1M-sized synthetic log), seminar.txt (the four-objective seminar,
# one seed, 100 epochs, validation every 64 steps: wall time, each run's timings, the comparison table) and
# large_catalog.txt (softmax on a catalog of ~1,000,000 items: peak GPU memory, evaluation samples/s).
set -euo pipefail
out=$(realpath -m "${1:?usage: bash benchmarks/gpu_suite.sh RESULTS_DIR}")
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$out"

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$out/device.txt"

# The CUDA tests; a failure is recorded and the measurements still run.
$python -m pytest -q -m "" -p no:cacheprovider tests/test_cuda.py tests/test_loss_properties.py \
    tests/test_evaluation.py tests/test_metrics.py > "$out/tests.log" 2>&1 || echo "CUDA tests FAILED" >> "$out/tests.log"
tail -n 3 "$out/tests.log"

$python benchmarks/bench.py --devices cuda --datasets synthetic-1m --output "$out/bench.md"

sweep=$(mktemp -d)
started=$(date +%s.%N)
$python run.py -m experiment=seminar dataset=synthetic dataset.num_users=6040 dataset.num_items=3706 \
    dataset.mean_length=165 dataset.max_length=2000 seed=0 trainer.device=cuda logger=none \
    trainer.progress=false hydra.sweep.dir="$sweep" > "$out/seminar.log" 2>&1
wall=$($python -c "print(round($(date +%s.%N) - $started, 1))")
{
    echo "four-objective seminar (synthetic MovieLens-1M size, seed 0): ${wall} s wall, one process, data included"
    $python - "$sweep" <<'EOF'
import json, sys
from pathlib import Path
for path in sorted(Path(sys.argv[1]).rglob("run.json")):
    record = json.loads(path.read_text())
    t = record["timings"]
    print(f"  {record['choices']['loss']:8} {record['status']:9} steps {record['steps']:5}  data {t['data_seconds']:6.1f} s"
          f"  train {t['train_seconds']:6.1f} s  eval {t['eval_seconds']:6.1f} s"
          f"  peak {t['peak_memory_bytes'] / 2**30:5.2f} GiB  {t['train_events_per_second']:,.0f} events/s")
EOF
    $python -m seqrec.compare "$sweep"
} | tee "$out/seminar.txt"

# 1,120,000 generated items of which about 1,000,000 occur in the ~3M events.
$python benchmarks/large_catalog.py --device cuda --batch-size 256 dataset.num_items=1120000 \
    | tee "$out/large_catalog.txt"
