"""
Fine-tuning speed on CPU with and without --length-buckets: training sequences per second
of `finetune.train_epoch` on the first N training features of NCBI-disease (NER) and ChemProt (RE,
one id per marker, entity window), random-init model, the same batches' contents either way. The
two orders alternate (plain, buckets, plain, buckets) so that background load hits both alike.

    OMP_NUM_THREADS=1 python bench/bench_finetune.py --data-dir ../shared/data   # mini, 1,600 features, ~2 min
    python bench/bench_finetune.py --size tiny --features 800
"""
import argparse
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))   # bench scripts run from anywhere; the library itself never does this
import data  # noqa: E402
import electramed  # noqa: E402
import finetune  # noqa: E402
from tokenizer import Tokenizer  # noqa: E402


def features_of(task, tokenizer, n, data_dir):
    folder = Path(data_dir) / task
    if task == "ncbi_disease":
        rows = data.read_conll(folder / "train.txt")[:n]
        labels = {t: i for i, t in enumerate(sorted({t for _, tags in rows for t in tags}))}
        return "ner", finetune.tagging_features(rows, tokenizer, labels, 128), len(labels)
    rows = data.read_blue_tsv(folder / "train.tsv")[:n]
    labels = {x: i for i, x in enumerate(sorted({x for _, x in rows}))}
    markers = finetune.marker_ids(tokenizer, [s for s, _ in rows])
    return "re", finetune.classification_features(rows, tokenizer, labels, 128, markers), len(labels)


def seconds_per_epoch(kind, features, n_labels, tokenizer, args, buckets):
    torch.manual_seed(0)
    config = electramed.model_config(args.size, len(tokenizer))
    model = finetune.FineTuner(electramed.Encoder(config), kind, n_labels)
    run = argparse.Namespace(batch_size=32, pad_id=tokenizer.pad_id, length_buckets=buckets)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 1.0)
    t0 = time.perf_counter()
    finetune.train_epoch(model, optimizer, scheduler, features, kind, run, torch.device("cpu"),
                         torch.Generator().manual_seed(1), "bench")
    return time.perf_counter() - t0


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size", default="mini", choices=list(electramed.SIZES))
    p.add_argument("--features", type=int, default=1600)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--data-dir", default=data.default_data_dir(), help="holds ncbi_disease/, chemprot/, vocab/")
    args = p.parse_args()
    tokenizer = Tokenizer.from_vocab_file(Path(args.data_dir) / "vocab" / "scivocab_uncased.txt")
    print(f"torch {torch.__version__} | threads {torch.get_num_threads()} | size {args.size} | "
          f"{args.features} features | batch 32")
    print("| task | plain seq/s | buckets seq/s | ratio |\n|---|---|---|---|")
    for task in ("ncbi_disease", "chemprot"):
        kind, features, n_labels = features_of(task, tokenizer, args.features, args.data_dir)
        best = {False: float("inf"), True: float("inf")}
        for _ in range(args.repeats):
            for buckets in (False, True):
                best[buckets] = min(best[buckets], seconds_per_epoch(kind, features, n_labels, tokenizer, args, buckets))
        plain, bucketed = len(features) / best[False], len(features) / best[True]
        print(f"| {task} | {plain:.0f} | {bucketed:.0f} | {bucketed / plain:.2f}x |", flush=True)


if __name__ == "__main__":
    main()
