"""
RTD-10M again with a wider generator: is the 32-wide generator why RTD's embeddings fine-tune worse than
random ones (RESULTS.md section 2, "Why RTD does not pay here")?

train_pretrain.py takes the generator's width from the size preset (electramed.GENERATOR_FRACTION: 1/4
for `mini`, as in ELECTRA-Small). This script sets it, then runs train_pretrain.py's own main with the
remaining arguments, unchanged; --resume and --export work as there (pass the same fraction again).

    python records/electra_claim/ablation.py --generator-fraction 0.5 -- --size mini --mask-prob 0.15 \
        --corpus ../shared/data/pubmed/corpus_10m.txt --out-dir runs/rtd10m_g50_m15 --save-every 250 --resume

ELECTRA (Clark et al. 2020, section 3.2 and Figure 3) finds generators 1/4 to 1/2 of the discriminator's
size best, and uses BERT's 15% mask for its Small and Base models (25% for Large).
"""
import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent.parent
sys.path.insert(0, str(REPO))
import electramed as em  # noqa: E402
import train_pretrain  # noqa: E402


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generator-fraction", type=float, required=True,
                   help="generator width / discriminator width, for every size preset")
    p.add_argument("rest", nargs=argparse.REMAINDER, help="-- then train_pretrain.py's arguments")
    args = p.parse_args()
    rest = args.rest[1:] if args.rest[:1] == ["--"] else args.rest
    for size in em.GENERATOR_FRACTION:
        em.GENERATOR_FRACTION[size] = args.generator_fraction
    train_pretrain.main(train_pretrain.parse_args(rest))


if __name__ == "__main__":
    main()
