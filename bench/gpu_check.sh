#!/usr/bin/env bash
# The prepared device check: a session lent a GPU runs this first, then commits
# the numbers to bench/RESULTS.md with the date and the device.
#
#   bash bench/gpu_check.sh                          # CUDA, at most ~8 minutes on one H100
#   bash bench/gpu_check.sh --cpu --out /tmp/check   # tiny sizes on CPU (under 5 minutes on 2 cores)
#   bash bench/gpu_check.sh --parts "pretrain_unpad bench_128_compile"   # only these, in this order
#
# Options: --out DIR (default $OUT/gpu_check when $OUT is set, else runs/gpu_check), --data DIR (default
# $ELECTRAMED_DATA, else ../shared/data; the parts that need data are skipped with a message when it is
# absent), --budget SECONDS (default 450 on CUDA, 290 on CPU), --parts "A B ..." (default: all, in the
# order below; a later session re-measures what an earlier one missed first). Needs torch, numpy, regex, tqdm;
# transformers is optional (without it the benchmark measures ours only and says so).
# Writes DIR/results.json and DIR/results.md, and per part DIR/<part>.json and DIR/<part>.log.
# The parts and what each checks: bench/gpu_check.py's docstring.
set -u
cd "$(dirname "$0")/.."
MODE=cuda
OUT_DIR="${OUT:+$OUT/gpu_check}"
OUT_DIR="${OUT_DIR:-runs/gpu_check}"
DATA="${ELECTRAMED_DATA:-../shared/data}"
BUDGET=""
PARTS="env unpad_512 unpad_512_compile profile_512_compile pretrain pretrain_unpad bench_128_compile bench_512_compile syncs resume finetune bench_512 bench_128"
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) MODE=cpu ;;
    --out) OUT_DIR="$2"; shift ;;
    --data) DATA="$2"; shift ;;
    --budget) BUDGET="$2"; shift ;;
    --parts) PARTS="$2"; shift ;;
    *) echo "usage: bash bench/gpu_check.sh [--cpu] [--out DIR] [--data DIR] [--budget SECONDS] [--parts \"A B\"]" >&2; exit 2 ;;
  esac
  shift
done
if [ -z "$BUDGET" ]; then BUDGET=$([ "$MODE" = cpu ] && echo 290 || echo 450); fi
if [ "$MODE" = cuda ] && ! python -c "import torch, sys; sys.exit(not torch.cuda.is_available())"; then
  echo "no CUDA device: run with --cpu for the CPU mode" >&2; exit 2
fi
[ -d "$DATA" ] || echo "note: no data at $DATA: the pre-training and fine-tuning parts will be skipped" >&2
mkdir -p "$OUT_DIR"
rm -f "$OUT_DIR"/*.json "$OUT_DIR"/*.log
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-$([ "$MODE" = cpu ] && echo 1 || echo 8)}"
START=$(date +%s)
for PART in $PARTS; do
  LEFT=$((BUDGET - $(date +%s) + START))
  # the part ends itself at its deadline; the timeout is the backstop for a hung interpreter
  timeout --kill-after=10 $((LEFT > 1 ? LEFT + 20 : 1)) \
    python bench/gpu_check.py part "$PART" --mode "$MODE" --out "$OUT_DIR" --data "$DATA" --time-left "$LEFT" \
    2>>"$OUT_DIR/$PART.log" || echo "$PART: exited with $?" >&2
done
python bench/gpu_check.py summary --mode "$MODE" --out "$OUT_DIR" --total-seconds $(($(date +%s) - START))
