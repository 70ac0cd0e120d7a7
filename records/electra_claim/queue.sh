#!/usr/bin/env bash
# ELECTRA's claim at CPU scale: the fine-tuning runs, one at a time, resumable (a job whose summary.json
# exists is skipped, so the queue can be stopped and restarted at any point). RESULTS.md section 2.
#
# Needs the two pre-training runs finished: runs/rtd10m (6,000 RTD steps) and runs/mlm10m (8,006 MLM steps,
# the same FLOPs). Every arm gets the same recipe; the lr is swept on dev with seed 1 for every arm.
#
#   bash records/electra_claim/queue.sh curve     # dev F1 against pre-training FLOPs (1 seed)
#   bash records/electra_claim/queue.sh full      # full training data, 3 seeds, test
#   bash records/electra_claim/queue.sh few       # 250 / 500 / 1,000 labelled sentences, 3 seeds, test
#   bash records/electra_claim/queue.sh probe     # frozen encoders; lr 2e-4; layers or embedding parts re-drawn,
#                                                 # swapped or scaled (dev, 1 seed)
#   bash records/electra_claim/queue.sh ablation  # RTD with generator 1/2 and mask 15%, to 1/4 of the FLOPs, and its curve point
#   bash records/electra_claim/queue.sh full random mini1m   # only these inits (the others need their runs)
#
# A job that sweeps the lr runs as one process per lr and seed (sweep, merge_parts.py), so a session that
# ends mid-job loses at most one training; run a mode twice to finish the seeds whose sweep another queue held.
# Two queues may run side by side (one per core): a job is claimed by creating its .lock directory, and a
# lock whose process has died (a session that ended) is taken over.
set -euo pipefail
cd "$(dirname "$0")/../.."
DATA=${ELECTRAMED_DATA:-../shared/data}
OUT=runs/claim
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

# init name -> --init arguments
# the two 10M-word models (records/electra_claim/models/README.md): RTD-10M is the committed model (a second
# run of its command; the first run's weights were not kept), MLM-10M is not in git: rebuild it first
declare -A MODEL=(
  [rtd10m]=models/electramed-mini-pubmed
  [mlm10m]=records/electra_claim/models/mlm10m
)
declare -A INIT=(
  [random]="--init random --size mini"
  [mini1m]="--init runs/claim/mini1m"     # the 1.33M-word model as committed at ab5c8cd (see below)
  [rtd10m]="--init ${MODEL[rtd10m]}"      # the final discriminator, fp16
  [mlm10m]="--init ${MODEL[mlm10m]}"      # the final MLM encoder, fp16
)
# the same epochs and patience for every arm, long enough for dev to stop rising (RESULTS.md §5: NER best
# epochs 4-9 of 10; RE up to 10)
NER="--epochs 20 --patience 3 --length-buckets"
RE="--epochs 10 --patience 3 --length-buckets"
LR_GRID="5e-4 1e-3 2e-3"

wanted() {   # wanted INIT: true when no init filter was given, or INIT is in it
  [ ${#ONLY[@]} -eq 0 ] && return 0
  local i; for i in "${ONLY[@]}"; do [ "$i" = "$1" ] && return 0; done
  return 1
}

claim() {   # claim NAME: take the job's lock, or fail when a live process holds it
  local lock="$OUT/$1.lock"
  mkdir -p "$(dirname "$lock")"
  if ! mkdir "$lock" 2>/dev/null; then
    kill -0 "$(cat "$lock/pid" 2>/dev/null || echo 0)" 2>/dev/null && return 1
    echo "=> $1: taking over the lock of a finished process"
  fi
  echo $$ > "$lock/pid"
}

job() {   # job NAME ARGS...: run finetune.py unless NAME already has a summary or another queue runs it
  local name=$1; shift
  [ -f "$OUT/$name/summary.json" ] && return 0
  claim "$name" || return 0
  echo "=> $name: python finetune.py $*"
  python finetune.py --data-dir "$DATA" --out-dir "$OUT/$name" "$@" > "$OUT/$name.log" 2>&1 \
    || echo "!! $name failed: see $OUT/$name.log"
  rm -rf "$OUT/$name.lock"
}

sweep() {   # sweep NAME ARGS...: finetune.py's `--lr 5e-4,1e-3,2e-3 --seeds 1,2,3`, as one process per lr and
            # seed under NAME/parts (a session that ends loses one training, not five), merged by merge_parts.py
  local name=$1; shift
  [ -f "$OUT/$name/summary.json" ] && return 0
  local lr best seed
  for lr in $LR_GRID; do job "$name/parts/lr_$lr" "$@" --lr $lr --seeds 1; done
  best=$(python records/electra_claim/merge_parts.py best-lr "$OUT/$name" $LR_GRID 2>/dev/null) || return 0
  for seed in 2 3; do job "$name/parts/seed_$seed" "$@" --lr $best --seeds $seed; done
  [ -f "$OUT/$name/parts/seed_2/summary.json" ] && [ -f "$OUT/$name/parts/seed_3/summary.json" ] || return 0
  python records/electra_claim/merge_parts.py merge "$OUT/$name" || echo "!! $name: merge failed"
}

export_step() {   # export_step RUN STEP: Hugging Face directories of a kept checkpoint
  local ckpt; ckpt=$(printf "runs/%s/checkpoints/step_%07d.pt" "$1" "$2")
  [ -d "${ckpt%.pt}" ] || python train_pretrain.py --export "$ckpt"
}

curve_points() {   # curve_points RUN NETWORK STEP...: dev F1 of both NER sets from each kept checkpoint
  local run=$1 network=$2; shift 2
  wanted $run || return 0
  for step in "$@"; do
    local ckpt; ckpt=$(printf "runs/%s/checkpoints/step_%07d" "$run" "$step")
    [ -f "$ckpt.pt" ] || { echo "-- $run step $step: not yet"; continue; }
    export_step "$run" "$step"
    for task in ncbi_disease bc5cdr; do
      job "curve/${run}_$step/$task" --task $task --init "$ckpt/$network" --lr 1e-3 $NER --seeds 1
    done
  done
}

mkdir -p "$OUT"
# a fresh machine (no runs/): start from the committed summaries, which collect.py copies there
[ -d "$OUT/full" ] || cp -r records/electra_claim/finetune/. "$OUT/"
# models/electramed-mini-pubmed is now RTD-10M: the mini1m arm reads the 1.33M-word model from git
[ -f "$OUT/mini1m/config.json" ] || { mkdir -p "$OUT/mini1m" &&
  git archive ab5c8cd models/electramed-mini-pubmed | tar -x --strip-components=2 -C "$OUT/mini1m"; }
WHAT=${1:-}
ONLY=("${@:2}")
case "$WHAT" in
  curve)   # quarter, half, three quarters and all of each run's FLOPs (MLM steps x 1.3344 = RTD steps); the
           # random-init line is the same run inside `full`: seed 1 at lr 1e-3, read from its sweep.json
    curve_points rtd10m discriminator 1500 3000 4500 6000
    curve_points mlm10m mlm 2000 4000 6000 8006 ;;
  full)
    for init in random rtd10m mlm10m mini1m; do
      wanted $init || continue
      for task in ncbi_disease bc5cdr; do
        sweep "full/$init/$task" --task $task ${INIT[$init]} $NER
      done
      for task in chemprot ddi; do
        sweep "full/$init/$task" --task $task ${INIT[$init]} $RE
      done
    done
    for init in random rtd10m; do
      wanted $init || continue
      sweep "full/$init/bioasq" --task bioasq ${INIT[$init]} $RE
    done ;;
  few)   # the three arms of the picture
    for n in 250 500 1000; do
      for init in random rtd10m mlm10m; do
        wanted $init || continue
        for task in bc5cdr ncbi_disease; do
          sweep "few/$init/${task}_$n" --task $task ${INIT[$init]} --max-train-examples $n \
            --epochs 30 --patience 5 --length-buckets
        done
      done
    done ;;
  probe)   # what the pre-trained features carry alone: --layerwise-decay 0 gives every encoder weight lr 0, so
           # only the task head learns (a linear probe of the top layer), the same recipe for every init
    for init in random mini1m rtd10m mlm10m; do
      wanted $init || continue
      for task in ncbi_disease bc5cdr; do
        job "probe/$init/$task" --task $task ${INIT[$init]} --layerwise-decay 0 --lr 5e-3 --epochs 10 --patience 3 \
          --length-buckets --seeds 1
      done
    done
    # and whether a gentler lr than the sweep's lowest (5e-4) keeps more of what pre-training learned
    for init in random rtd10m; do
      wanted $init && job "lowlr/$init/ncbi_disease" --task ncbi_disease ${INIT[$init]} --lr 2e-4 $NER --seeds 1
    done
    # and which part holds RTD back: its top layers drawn afresh (1, 2), or all 4 (only the embeddings kept)
    for init_n in rtd10m:1 rtd10m:2 rtd10m:4 mlm10m:4; do
      init=${init_n%:*} n=${init_n#*:}
      wanted $init && job "reinit/${init}_top$n/ncbi_disease" --task ncbi_disease \
        ${INIT[$init]} --reinit-layers $n --lr 1e-3 $NER --seeds 1
    done
    # and the two swapped: one model's layers on the other's embeddings (transplant.py)
    for pair in rtd10m:mlm10m mlm10m:rtd10m; do
      layers=${pair%:*} embeddings=${pair#*:}
      model=$OUT/models/${layers}_layers_${embeddings}_embeddings
      wanted $layers || continue
      [ -f "$model/pytorch_model.bin" ] || python records/electra_claim/transplant.py \
        --layers "${MODEL[$layers]}" --embeddings "${MODEL[$embeddings]}" --out "$model"
      job "transplant/${layers}_layers_${embeddings}_embeddings/ncbi_disease" --task ncbi_disease --init "$model" \
        --lr 1e-3 $NER --seeds 1
    done
    # and which part of the embedding block: the word embeddings alone kept (position, type and LayerNorm
    # drawn afresh), or all but the word embeddings kept; every layer drawn afresh as in reinit/*_top4
    for init_kept in rtd10m:word mlm10m:word rtd10m:position; do
      init=${init_kept%:*} kept=${init_kept#*:}
      fresh=position_embeddings,token_type_embeddings,LayerNorm
      [ $kept = position ] && fresh=word_embeddings
      model=$OUT/models/${init}_${kept}_embeddings_kept
      wanted $init || continue
      [ -f "$model/pytorch_model.bin" ] || python records/electra_claim/transplant.py \
        --layers "${MODEL[$init]}" --embeddings random --parts $fresh --out "$model"
      job "embparts/${init}_${kept}/ncbi_disease" --task ncbi_disease --init "$model" --reinit-layers 4 \
        --lr 1e-3 $NER --seeds 1
    done
    # and whether it is the position embeddings' scale: RTD-10M's position rows have a mean norm of 0.18
    # against 0.56 for its word rows (MLM-10M: 0.72 and 0.79; random init: both 0.23; embedding_norms.md);
    # x3.2 evens them
    model=$OUT/models/rtd10m_position_x3.2
    if wanted rtd10m; then
      [ -f "$model/pytorch_model.bin" ] || python records/electra_claim/transplant.py --layers "${MODEL[rtd10m]}" \
        --embeddings "${MODEL[rtd10m]}" --scale position_embeddings=3.2 --out "$model"
      job "embscale/rtd10m_position_x3.2_fresh_layers/ncbi_disease" --task ncbi_disease --init "$model" \
        --reinit-layers 4 --lr 1e-3 $NER --seeds 1
      for task in ncbi_disease bc5cdr; do
        job "embscale/rtd10m_position_x3.2/$task" --task $task --init "$model" --lr 1e-3 $NER --seeds 1
      done
    fi ;;
  ablation)   # RTD with a generator 1/2 as wide (64) and BERT's 15% mask (ablation.py): 6,733 steps are the
              # RTD-10M run's FLOPs; a quarter of them (step 1,683) is fine-tuned as a point of the curve
    run=rtd10m_g50_m15 stop=1683
    ckpt=$(printf "runs/%s/checkpoints/step_%07d" $run $stop)
    if [ ! -f "$ckpt.pt" ]; then
      mkdir -p runs/$run
      python records/electra_claim/ablation.py --generator-fraction 0.5 -- --size mini --mask-prob 0.15 \
        --data-dir "$DATA" --corpus "$DATA/pubmed/corpus_10m.txt" --out-dir runs/$run --steps 6733 \
        --save-every 561 --keep-checkpoints 30 --resume >> runs/$run.out 2>&1 &
      pid=$!
      while kill -0 $pid 2>/dev/null && [ ! -f "$ckpt.pt" ]; do sleep 20; done
      kill $pid 2>/dev/null || true
      wait $pid || true
    fi
    curve_points $run discriminator $stop ;;
  *) echo "usage: bash records/electra_claim/queue.sh curve|full|few|probe|ablation" >&2; exit 2 ;;
esac
