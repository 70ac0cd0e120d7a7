"""
How the embedding block grows during pre-training (RESULTS.md section 2, "why RTD does not pay here"):
the mean L2 norm of the word-embedding rows and of the first 128 position rows (the positions a 128-token
example uses), at kept checkpoints of runs/rtd10m and runs/mlm10m. At BERT's init both are about
0.02 * sqrt(128) = 0.23.

    python records/electra_claim/embedding_norms.py      # writes embedding_norms.md beside this script

The word norm is over the rows of pieces that occur in the packed training text (the others get no
input gradient), counted from runs/rtd10m/shards.
"""
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
RUNS = HERE.parent.parent / "runs"
STEPS = {"rtd10m": [250, 500, 1000, 1500, 3000, 4500, 6000], "mlm10m": [250, 500, 1000, 2000, 4000, 6000, 8006],
         "rtd10m_g50_m15": [561, 1122, 1683]}          # the last: ablation.py (generator 1/2, mask 15%)


def seen_pieces() -> torch.Tensor:
    """A boolean mask over the vocabulary: pieces that occur in the packed training examples."""
    ids = np.fromfile(RUNS / "rtd10m" / "shards" / "examples.bin", dtype=np.uint16)
    return torch.from_numpy(np.bincount(ids, minlength=31090) > 0)


def norms(run: str, step: int, seen: torch.Tensor) -> tuple[float, float]:
    state = torch.load(RUNS / run / "checkpoints" / f"step_{step:07d}.pt", map_location="cpu", weights_only=False)
    prefix = next(k for k in state["model"] if k.endswith("embeddings.word_embeddings.weight")).split("word_")[0]
    word = state["model"][prefix + "word_embeddings.weight"].float()
    position = state["model"][prefix + "position_embeddings.weight"].float()[:128]
    return word[seen].norm(dim=1).mean().item(), position.norm(dim=1).mean().item()


def main():
    seen = seen_pieces()
    lines = [f"Mean row norm of the shared embedding block ({int(seen.sum()):,} word pieces that occur in the "
             "text; positions 0-127). BERT's init: both about 0.23.", "",
             "| run | step | word rows | position rows | position / word |", "|---|---|---|---|---|"]
    for run, steps in STEPS.items():
        for step in steps:
            w, p = norms(run, step, seen)
            lines.append(f"| {run} | {step:,} | {w:.3f} | {p:.3f} | {p / w:.2f} |")
    text = "\n".join(lines) + "\n"
    (HERE / "embedding_norms.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
