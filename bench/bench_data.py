"""
Corpus preparation speed and memory: `data.prepare_corpus` with 2 workers on the shared PubMed
corpus and on a 4x concatenation of it (in a temp dir). Each run is a fresh child process that reports
its peak resident memory (VmHWM of itself and of its largest tokenizer worker), so memory must
stay flat when the corpus grows 4x. For scale, the same text is tokenized by Hugging Face's Rust
`tokenizers` BertWordPieceTokenizer (tokenization only, no packing, no writing), on the same vocab.

    OMP_NUM_THREADS=1 python bench/bench_data.py              # ~2 minutes on 2 cores
    python bench/bench_data.py --copies 1 --corpus ../shared/data/pubmed/pubmed_sample.txt
"""
import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))   # bench scripts run from anywhere; the library itself never does this
import data  # noqa: E402

CHILD = """
import json, os, sys, threading, time
sys.path.insert(0, {repo!r})
import data

def hwm_mb(pid):   # VmHWM: peak RSS of the process since its exec (ru_maxrss would include the parent's)
    for line in open(f"/proc/{{pid}}/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

def children():
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and int(open(f"/proc/{{entry}}/stat").read().rsplit(")", 1)[1].split()[1]) == os.getpid():
                yield int(entry)
        except (OSError, ValueError):
            pass

workers_mb = [0.0]
def watch():
    while True:
        for pid in children():
            try:
                workers_mb[0] = max(workers_mb[0], hwm_mb(pid) or 0)
            except OSError:
                pass
        time.sleep(0.2)

threading.Thread(target=watch, daemon=True).start()
start = time.perf_counter()
data.prepare_corpus({corpus!r}, {vocab!r}, {out!r}, max_len=128, workers={workers})
print(json.dumps({{"seconds": time.perf_counter() - start, "main_mb": hwm_mb("self"), "workers_mb": workers_mb[0]}}))
"""


def prepare_in_child(corpus, vocab, out, workers):
    code = CHILD.format(repo=str(REPO), corpus=[str(corpus)], vocab=str(vocab), out=str(out), workers=workers)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def hf_tokenize_seconds(corpus, vocab):
    from tokenizers import BertWordPieceTokenizer
    tok = BertWordPieceTokenizer(str(vocab), lowercase=True)
    lines = [line for line in corpus.read_text(encoding="utf-8").splitlines() if line.strip()]
    start = time.perf_counter()
    tok.encode_batch(lines, add_special_tokens=False)
    return time.perf_counter() - start


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data-dir", default=data.default_data_dir())
    p.add_argument("--corpus", default=None, help="default: DATA_DIR/pubmed/corpus.txt")
    p.add_argument("--copies", type=int, nargs="+", default=[1, 4], help="corpus sizes, in copies")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--out-dir", default=None, help="default: a temp dir, deleted afterwards")
    return p.parse_args(argv)


def main(args):
    corpus = Path(args.corpus or Path(args.data_dir) / "pubmed" / "corpus.txt")
    vocab = Path(args.data_dir) / "vocab" / "scivocab_uncased.txt"
    with tempfile.TemporaryDirectory() as tmp:
        out_dir = Path(args.out_dir or tmp)
        print(f"out-dir: {out_dir}")
        rows = []
        for copies in args.copies:
            text = out_dir / f"corpus_x{copies}.txt"
            with open(text, "wb") as f:
                for _ in range(copies):
                    f.write(corpus.read_bytes())
            mb = text.stat().st_size / 1e6
            run = prepare_in_child(text, vocab, out_dir / f"shards_x{copies}", args.workers)
            meta = json.loads((out_dir / f"shards_x{copies}" / "meta.json").read_text())
            hf = hf_tokenize_seconds(text, vocab)
            rows.append((copies, mb, meta["num_examples"], run, hf))
            print(f"x{copies}: {mb:.1f} MB, {meta['num_examples']} examples, {run['seconds']:.1f} s "
                  f"({mb / run['seconds']:.2f} MB/s), peak RSS main {run['main_mb']:.0f} MB, "
                  f"largest worker {run['workers_mb']:.0f} MB; HF tokenizers (Rust, all cores, tokenize only) "
                  f"{hf:.1f} s ({mb / hf:.2f} MB/s)")
            text.unlink()
    print("\n| corpus | MB | examples | prepare s | MB/s | peak RSS main MB | peak RSS worker MB | HF tokenize-only MB/s | ours / HF |")
    print("|---|---|---|---|---|---|---|---|---|")
    for copies, mb, n, run, hf in rows:
        print(f"| x{copies} | {mb:.1f} | {n} | {run['seconds']:.1f} | {mb / run['seconds']:.2f} | "
              f"{run['main_mb']:.0f} | {run['workers_mb']:.0f} | {mb / hf:.2f} | {hf / run['seconds']:.2f} |")
    if len(rows) > 1:
        first, last = rows[0][3], rows[-1][3]
        print(f"\nmemory ratio x{rows[-1][0]} / x{rows[0][0]}: main {last['main_mb'] / first['main_mb']:.2f}, "
              f"workers {last['workers_mb'] / first['workers_mb']:.2f}")


if __name__ == "__main__":
    main(parse_args())
