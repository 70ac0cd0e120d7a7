#!/usr/bin/env bash
# padded vs unpadded mini step on real PubMed batches, CPU, 1 thread, interleaved twice
cd "$(dirname "$0")/../.."   # the repository root; needs the packed shards of a mini run in runs/mini_sci_lr1e-3_m25
for R in 1 2; do for U in no-unpad unpad; do
  D=runs/unpad_bench/${U}_$R; rm -rf $D; mkdir -p $D; cp -r runs/mini_sci_lr1e-3_m25/shards $D/
  OMP_NUM_THREADS=1 python train_pretrain.py --size mini --data-dir ../shared/data --out-dir $D --steps 60 --log-every 20 --eval-every 1000 --save-every 1000 --data-workers 1 --$U > $D.out 2>&1
done; done
