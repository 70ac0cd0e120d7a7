"""
One model's encoder layers on another model's embeddings (RESULTS.md section 2, "why RTD does not pay
here"): does RTD-10M's encoder help once its embeddings are as good as MLM-10M's?

    python records/electra_claim/transplant.py --layers records/electra_claim/models/rtd10m \
        --embeddings records/electra_claim/models/mlm10m --out runs/claim/models/rtd_layers_mlm_embeddings

Copies the --layers directory (Hugging Face layout: config, vocabulary, tokenizer files) and swaps every
`embeddings.*` tensor for the one of the same name in --embeddings (the two must share shapes and vocabulary).
"""
import argparse
import shutil
from pathlib import Path

import torch


def embedding_tensors(state: dict) -> dict:
    """{name after 'embeddings.': tensor} of a state dict, with or without the 'electra.' prefix."""
    return {k.split("embeddings.", 1)[1]: v for k, v in state.items() if ".embeddings." in f".{k}"}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--layers", required=True, help="the model whose encoder layers are kept")
    parser.add_argument("--embeddings", required=True, help="the model whose embeddings are put in")
    parser.add_argument("--out", required=True, help="the new model's directory")
    args = parser.parse_args()
    if (Path(args.layers) / "vocab.txt").read_bytes() != (Path(args.embeddings) / "vocab.txt").read_bytes():
        raise SystemExit("the two models have different vocabularies")
    shutil.copytree(args.layers, args.out, dirs_exist_ok=True)
    state = torch.load(Path(args.layers) / "pytorch_model.bin", map_location="cpu")
    donor = embedding_tensors(torch.load(Path(args.embeddings) / "pytorch_model.bin", map_location="cpu"))
    swapped = 0
    for key in state:
        if ".embeddings." in f".{key}":
            name = key.split("embeddings.", 1)[1]
            if donor[name].shape != state[key].shape:
                raise SystemExit(f"{key}: shapes differ, {tuple(donor[name].shape)} and {tuple(state[key].shape)}")
            state[key] = donor[name].to(state[key].dtype)
            swapped += 1
    torch.save(state, Path(args.out) / "pytorch_model.bin")
    print(f"=> wrote {args.out}: {swapped} embedding tensors from {args.embeddings}, the rest from {args.layers}")


if __name__ == "__main__":
    main()
