"""
One model's encoder layers on another model's embeddings (RESULTS.md section 2, "why RTD does not pay
here"): does RTD-10M's encoder help once its embeddings are as good as MLM-10M's?

    python records/electra_claim/transplant.py --layers models/electramed-mini-pubmed \
        --embeddings records/electra_claim/models/mlm10m --out runs/claim/models/rtd_layers_mlm_embeddings

Copies the --layers directory (Hugging Face layout: config, vocabulary, tokenizer files) and swaps every
`embeddings.*` tensor for the one of the same name in --embeddings (the two must share shapes and vocabulary).
--embeddings random takes them from a freshly drawn encoder of the same config (BERT's init, as
finetune.py's --init random); --parts swaps only some of them, to find which part of an embedding block
holds a deficit; --scale multiplies one part of the result (--embeddings the same model: only that):

    python records/electra_claim/transplant.py --layers models/electramed-mini-pubmed \
        --embeddings random --parts word_embeddings --out runs/claim/models/rtd10m_random_word_embeddings
    python records/electra_claim/transplant.py --layers models/electramed-mini-pubmed \
        --embeddings models/electramed-mini-pubmed --scale position_embeddings=3.2 --out ...
"""
import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import torch

PARTS = ("word_embeddings", "position_embeddings", "token_type_embeddings", "LayerNorm")


def embedding_tensors(state: dict) -> dict:
    """{name after 'embeddings.': tensor} of a state dict, with or without the 'electra.' prefix."""
    return {k.split("embeddings.", 1)[1]: v for k, v in state.items() if ".embeddings." in f".{k}"}


def random_donor(like: Path, seed: int = 0) -> dict:
    """The state dict of `like`'s encoder drawn afresh (electramed's init: BERT's normal(0, 0.02))."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent.parent))
    from functools import partial
    import electramed as em
    encoder = em.load_hf_encoder(str(like))
    torch.manual_seed(seed)
    encoder.apply(partial(em.init_weights, std=encoder.config.initializer_range))
    with tempfile.TemporaryDirectory() as tmp:
        em.save_hf_checkpoint(encoder, tmp)
        return torch.load(Path(tmp) / "pytorch_model.bin", map_location="cpu")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", required=True, help="the model whose encoder layers are kept")
    parser.add_argument("--embeddings", required=True, help="the model whose embeddings are put in, or random")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"which embedding tensors to swap (default: all of {PARTS})")
    parser.add_argument("--scale", action="append", default=[], metavar="PART=FACTOR",
                        help="multiply one embedding tensor of the result, e.g. position_embeddings=3.2 (repeatable)")
    parser.add_argument("--out", required=True, help="the new model's directory")
    args = parser.parse_args()
    parts = args.parts.split(",")
    if set(parts) - set(PARTS):
        raise SystemExit(f"--parts {args.parts}: each must be one of {PARTS}")
    if args.embeddings != "random" and \
            (Path(args.layers) / "vocab.txt").read_bytes() != (Path(args.embeddings) / "vocab.txt").read_bytes():
        raise SystemExit("the two models have different vocabularies")
    shutil.copytree(args.layers, args.out, dirs_exist_ok=True)
    state = torch.load(Path(args.layers) / "pytorch_model.bin", map_location="cpu")
    donor = embedding_tensors(random_donor(Path(args.layers)) if args.embeddings == "random" else
                              torch.load(Path(args.embeddings) / "pytorch_model.bin", map_location="cpu"))
    swapped = 0
    for key in state:
        if ".embeddings." in f".{key}":
            name = key.split("embeddings.", 1)[1]
            if not name.startswith(tuple(parts)):
                continue
            if donor[name].shape != state[key].shape:
                raise SystemExit(f"{key}: shapes differ, {tuple(donor[name].shape)} and {tuple(state[key].shape)}")
            state[key] = donor[name].to(state[key].dtype)
            swapped += 1
    for item in args.scale:
        part, factor = item.split("=")
        keys = [k for k in state if f"embeddings.{part}." in k]
        if part not in PARTS or not keys:
            raise SystemExit(f"--scale {item}: the part must be one of {PARTS}")
        for key in keys:
            state[key] = (state[key].float() * float(factor)).to(state[key].dtype)
    torch.save(state, Path(args.out) / "pytorch_model.bin")
    print(f"=> wrote {args.out}: {swapped} embedding tensors ({args.parts}) from {args.embeddings}, "
          f"the rest from {args.layers}")


if __name__ == "__main__":
    main()
