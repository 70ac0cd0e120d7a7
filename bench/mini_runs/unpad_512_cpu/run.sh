#!/usr/bin/env bash
# Padded vs --unpad on real PubMed batches at L = 512 on the CPU (bench_pretrain.py --shards), small,
# batch 8, 1 thread, two interleaved rounds; then ours --unpad vs the transformers step on the same batches.
# Usage: bash bench/mini_runs/unpad_512_cpu/run.sh [DATA_DIR]   (TRANSFORMERS_ONLY=1: the last part only)
set -eu
cd "$(dirname "$0")/../../.."
DATA="${1:-${ELECTRAMED_DATA:-../shared/data}}"
OUT=bench/mini_runs/unpad_512_cpu
SHARDS=runs/shards_corpus_512
TRANSFORMERS_ONLY=${TRANSFORMERS_ONLY:-0}
python data.py prepare --corpus "$DATA/pubmed/corpus.txt" --vocab "$DATA/vocab/scivocab_uncased.txt" \
  --max-len 512 --workers 1 --out-dir "$SHARDS" | tail -1
if [ "$TRANSFORMERS_ONLY" = 0 ]; then
: > "$OUT/rows.jsonl"
for round in 1 2; do
  for variant in "--no-unpad --dropout 0.1" "--unpad --dropout 0.1" "--no-unpad --dropout 0" "--unpad --dropout 0"; do
    OMP_NUM_THREADS=1 python bench/bench_pretrain.py --impl ours --size small --seq-len 512 --batch-size 8 \
      --steps 5 --warmup 1 --device cpu --dtype fp32 --shards "$SHARDS" \
      --vocab "$DATA/vocab/scivocab_uncased.txt" $variant | tail -1 >> "$OUT/rows.jsonl"
    echo "round $round $variant: $(tail -1 "$OUT/rows.jsonl" | cut -c1-120)"
  done
done
fi
# ours --unpad against the transformers step on the same real batches (padded: it cannot unpad), interleaved
OMP_NUM_THREADS=1 python bench/bench_pretrain.py --size small --seq-len 512 --batch-size 8 --steps 5 --warmup 1 \
  --repeats 2 --shards "$SHARDS" --vocab "$DATA/vocab/scivocab_uncased.txt" --unpad --dropout 0.1 \
  --out-dir "$OUT/vs_transformers" | tail -4
