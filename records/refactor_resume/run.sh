#!/usr/bin/env bash
# A checkpoint written by the code before the tutorial restructuring resumes bit-identically after it.
#
# Before (at commit 793b165, in a worktree): a 30-step tiny run, dropout 0.1 so the RNG states matter,
# checkpoints at steps 10, 20 and 30 in runs/pre_refactor/straight/.
# After (this checkout): copy its step-10 checkpoint into a fresh run directory, --resume to step 30,
# and compare every tensor of the model and optimizer state with the old step-30 checkpoint.
#
#   bash records/refactor_resume/run.sh           # prints "bit-identical: N tensors" or the first difference
set -euo pipefail
cd "$(dirname "$0")/../.."
PRE=$(pwd)/runs/pre_refactor
DATA=$(cd "${ELECTRAMED_DATA:-../shared/data}" && pwd)
COMMON=(--size tiny --corpus $PRE/corpus.txt --vocab $DATA/vocab/scivocab_uncased.txt --seq-len 64
        --batch-size 4 --steps 30 --dropout 0.1 --log-every 5 --eval-every 10 --save-every 10)
if [ ! -f $PRE/straight/checkpoints/step_0000030.pt ]; then
  mkdir -p $PRE
  python - "$DATA" $PRE/corpus.txt <<'PY'
import sys
lines, docs = [], 0
for line in open(f"{sys.argv[1]}/pubmed/pubmed_sample.txt").read().splitlines():
    lines.append(line)
    docs += not line.strip()
    if docs == 150:
        break
open(sys.argv[2], "w").write("\n".join(lines) + "\n")
PY
  git worktree add -f /tmp/pre793 793b165
  (cd /tmp/pre793 && OMP_NUM_THREADS=1 python train_pretrain.py "${COMMON[@]}" --data-workers 1 \
     --keep-checkpoints 10 --out-dir $PRE/straight)
fi
rm -rf $PRE/resumed && mkdir -p $PRE/resumed/checkpoints
cp $PRE/straight/checkpoints/step_0000010.pt $PRE/resumed/checkpoints/
OMP_NUM_THREADS=1 python train_pretrain.py "${COMMON[@]}" --out-dir $PRE/resumed --resume > $PRE/resumed.out 2>&1
python - <<'PY'
import torch
a = torch.load("runs/pre_refactor/straight/checkpoints/step_0000030.pt", weights_only=False)
b = torch.load("runs/pre_refactor/resumed/checkpoints/step_0000030.pt", weights_only=False)
n = 0
for part in ("model", "optimizer"):
    flat_a, flat_b = torch.utils._pytree.tree_flatten(a[part])[0], torch.utils._pytree.tree_flatten(b[part])[0]
    assert len(flat_a) == len(flat_b), f"{part}: {len(flat_a)} vs {len(flat_b)} entries"
    for i, (x, y) in enumerate(zip(flat_a, flat_b)):
        same = torch.equal(x, y) if isinstance(x, torch.Tensor) else x == y
        assert same, f"{part} entry {i} differs"
        n += isinstance(x, torch.Tensor)
print(f"bit-identical: {n} tensors of model and optimizer state at step {b['step']} (resumed from step 10)")
PY
