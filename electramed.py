"""The ELECTRA model: a BERT encoder, a small generator that fills in masked tokens, and a
discriminator that tells which tokens were replaced (docs/paper.md §2-§3; ELECTRA, Clark et al. 2020).

This file holds only the networks and their checkpoints. The training objective (masking, sampling,
losses) lives in train_pretrain.py; task heads for fine-tuning live in finetune.py.

    python -c "import electramed as em; print(em.count_parameters(em.Discriminator(em.model_config('base', 31090))))"
    python -c "import electramed as em; d = em.load_hf_checkpoint('path/to/electramed_base'); print(d.config)"

Checkpoints use the Hugging Face layout (config.json + pytorch_model.bin or model.safetensors), so the
released ELECTRAMed weights run here and ours run in transformers. Appendix: unpadding, file I/O, task heads.
References: google-research/electra (model/modeling.py, run_pretraining.py), BERT (Devlin et al. 2019),
transformers/models/electra/modeling_electra.py (the key names of the released checkpoints).
"""
import json
import os
import re
import shutil
from dataclasses import asdict, dataclass, fields
from functools import partial
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

# Shapes in comments: B batch, L sequence length, D hidden size, E embedding size,
# H attention heads, K head size (D // H), N masked positions per example, V vocabulary size.


# ---------------------------------------------------------------------------------------------
# 1. Configuration and sizes                                                 (docs/paper.md §2)
#    Field names are the keys of Hugging Face's ElectraConfig, so config.json maps both ways.
#    The generator keeps the layer count and embedding size; its width is a fraction of the
#    discriminator's, with FFN = 4 * hidden and one head per 64 dimensions (Google's code).
# ---------------------------------------------------------------------------------------------
@dataclass
class ModelConfig:
    vocab_size: int = 31090                 # SciBERT scivocab, uncased (docs/paper.md §1)
    embedding_size: int = 768               # Small uses 128 and a linear projection up to hidden_size
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    max_position_embeddings: int = 512
    type_vocab_size: int = 2
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1
    layer_norm_eps: float = 1e-12
    initializer_range: float = 0.02
    pad_token_id: int = 0


# Shapes per size (docs/paper.md §2): the discriminator's, and the generator's width as a fraction of it;
# each size's recipe (lr, batch, steps...) is train_pretrain.py's PRESETS. "tiny" is for tests and CPU demos
# (E != D, so the projection runs as in Small); "mini", the CPU proof of the method, is a third of Small's
# depth and half its width: 2 CPU cores pre-train it in under two hours (bench/results_pretrain.md §4).
SIZES = {
    "tiny":  dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                  intermediate_size=256, embedding_size=32),
    "mini":  dict(hidden_size=128, num_hidden_layers=4, num_attention_heads=2,
                  intermediate_size=512, embedding_size=128),
    "small": dict(hidden_size=256, num_hidden_layers=12, num_attention_heads=4,
                  intermediate_size=1024, embedding_size=128),
    "base":  dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12,
                  intermediate_size=3072, embedding_size=768),
    "large": dict(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                  intermediate_size=4096, embedding_size=1024),
}
GENERATOR_FRACTION = {"tiny": 1 / 4, "mini": 1 / 4, "small": 1 / 4, "base": 1 / 3, "large": 1 / 4}


def model_config(size: str, vocab_size: int, **overrides) -> ModelConfig:
    """The discriminator config of a named size (docs/paper.md §2), with any field overridden."""
    if size not in SIZES:
        raise ValueError(f"unknown model size {size!r}; choose one of {', '.join(SIZES)}")
    return ModelConfig(**{**SIZES[size], "vocab_size": vocab_size, **overrides})


def generator_config(config: ModelConfig, fraction: float) -> ModelConfig:
    """The generator's config: `fraction` of the width, same depth and embedding size
    (google-research/electra:run_pretraining.py, get_generator_config)."""
    hidden = int(round(config.hidden_size * fraction))
    return ModelConfig(**{**asdict(config), "hidden_size": hidden, "intermediate_size": 4 * hidden,
                          "num_attention_heads": max(1, hidden // 64)})


def init_weights(module: nn.Module, std: float) -> None:
    """BERT's initialisation: normal(0, 0.02) for every matrix, zero biases, LayerNorm at identity."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, mean=0.0, std=std)   # truncated normal in Google's TF; HF uses plain normal
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)
    if isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


# ---------------------------------------------------------------------------------------------
# 2. Embeddings                                                          (docs/paper.md §2; BERT)
#    word + learned absolute position + token type, then LayerNorm and dropout, all of size E.
#    This whole block is what the generator shares with the discriminator (docs/paper.md §3).
# ---------------------------------------------------------------------------------------------
class Embeddings(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        E = config.embedding_size
        # CHOICE: no padding_idx (HF sets one): as in Google's code, the [PAD] row is an ordinary row.
        self.word_embeddings = nn.Embedding(config.vocab_size, E)
        self.position_embeddings = nn.Embedding(config.max_position_embeddings, E)
        self.token_type_embeddings = nn.Embedding(config.type_vocab_size, E)
        self.LayerNorm = nn.LayerNorm(E, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, input_ids, token_type_ids=None):
        """input_ids, token_type_ids: (B, L) long -> (B, L, E); the positions are 0..L-1."""
        x = self.word_embeddings(input_ids) + self.position_embeddings.weight[:input_ids.shape[1]]   # (B, L, E)
        if token_type_ids is None:
            x = x + self.token_type_embeddings.weight[0]     # no segment ids: everything is segment A
        else:
            x = x + self.token_type_embeddings(token_type_ids)
        return self.dropout(self.LayerNorm(x))


# ---------------------------------------------------------------------------------------------
# 3. Self-attention (SDPA)                                          (docs/paper.md §2, §5; BERT)
#    One fused q/k/v projection and one scaled_dot_product_attention call. The mask hides padded
#    keys only; with no padding the caller passes None, so the flash kernel can run on GPU.
# ---------------------------------------------------------------------------------------------
class SelfAttention(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        D, H = config.hidden_size, config.num_attention_heads
        if D % H:
            raise ValueError(f"hidden_size {D} is not a multiple of num_attention_heads {H}")
        self.num_heads = H
        self.dropout_p = config.attention_probs_dropout_prob
        self.qkv = nn.Linear(D, 3 * D)          # rows: [query; key; value], as HF's three Linears stacked
        self.proj = nn.Linear(D, D)

    def forward(self, x, mask=None):
        """x: (B, L, D); mask: None or (B, 1, 1, L) bool, True = a real key. Returns (B, L, D)."""
        dropout_p = self.dropout_p if self.training else 0.0
        B, L, D = x.shape
        qkv = self.qkv(x).view(B, L, 3, self.num_heads, D // self.num_heads)
        q, k, v = qkv.permute(2, 0, 3, 1, 4).unbind(0)               # 3 x (B, H, L, K)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout_p)  # (B, H, L, K)
        return self.proj(y.transpose(1, 2).reshape(B, L, D))


# ---------------------------------------------------------------------------------------------
# 4. Feed-forward and the post-LN block                                  (docs/paper.md §2; BERT)
#    Post-LN, as BERT and ELECTRA: x = LN(x + Dropout(sublayer(x))). Most modern code (GPT-2, nanoGPT)
#    is pre-LN; the released weights only work with post-LN. GELU: the exact erf form (HF's "gelu").
# ---------------------------------------------------------------------------------------------
class FeedForward(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense_in = nn.Linear(config.hidden_size, config.intermediate_size)
        self.dense_out = nn.Linear(config.intermediate_size, config.hidden_size)

    def forward(self, x):
        return self.dense_out(F.gelu(self.dense_in(x)))           # (B, L, D) -> (B, L, 4D) -> (B, L, D)


class Block(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.attention = SelfAttention(config)
        self.attention_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.ffn = FeedForward(config)
        self.ffn_norm = nn.LayerNorm(config.hidden_size, eps=config.layer_norm_eps)
        self.dropout = nn.Dropout(config.hidden_dropout_prob)

    def forward(self, x, mask=None):
        x = self.attention_norm(x + self.dropout(self.attention(x, mask)))
        return self.ffn_norm(x + self.dropout(self.ffn(x)))


# ---------------------------------------------------------------------------------------------
# 5. Encoder                                                             (docs/paper.md §2; BERT)
#    embeddings -> (linear E -> D when the sizes differ) -> num_hidden_layers blocks.
# ---------------------------------------------------------------------------------------------
class Encoder(nn.Module):
    def __init__(self, config: ModelConfig, init: bool = True):
        super().__init__()
        self.config = config
        self.embeddings = Embeddings(config)
        self.embeddings_project = (nn.Linear(config.embedding_size, config.hidden_size)
                                   if config.embedding_size != config.hidden_size else None)
        self.layers = nn.ModuleList(Block(config) for _ in range(config.num_hidden_layers))
        if init:
            self.apply(partial(init_weights, std=config.initializer_range))

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        """input_ids, token_type_ids: (B, L) long; attention_mask: None (no padding) or (B, L),
        True/1 = real token. Returns the last hidden states (B, L, D)."""
        if isinstance(attention_mask, Unpadded):          # train_pretrain --unpad: real tokens only (Appendix A.1)
            return encoder_forward_unpadded(self, input_ids, token_type_ids, attention_mask)
        x = self.embeddings(input_ids, token_type_ids)                     # (B, L, E)
        mask = None if attention_mask is None else attention_mask.bool()[:, None, None, :]  # (B, 1, 1, L)
        if self.embeddings_project is not None:
            x = self.embeddings_project(x)                                 # (B, L, D)
        for layer in self.layers:
            x = layer(x, mask)
        return x


# ---------------------------------------------------------------------------------------------
# 6. Generator and its MLM head                                              (docs/paper.md §3)
#    A narrower encoder over the shared embedding block. MLM head: dense (D -> E) -> GELU ->
#    LayerNorm -> matmul with the shared word-embedding matrix + bias, evaluated only at the
#    masked positions: a fixed-size gather (N per example), so shapes stay static under compile.
# ---------------------------------------------------------------------------------------------
class MaskedLMHead(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.embedding_size)
        self.LayerNorm = nn.LayerNorm(config.embedding_size, eps=config.layer_norm_eps)
        self.bias = nn.Parameter(torch.zeros(config.vocab_size))

    def forward(self, h, word_embeddings):
        """h: (B, N, D); word_embeddings: (V, E), the shared input matrix. Returns fp32 logits (B, N, V).
        CHOICE: fp32 even under bf16 autocast: the logits feed the sampler (docs/paper.md §3), and bf16
        would round a logit of ~10 by up to ~0.03. The head sees N of L positions: ~3% of Base's FLOPs."""
        with torch.autocast(h.device.type, enabled=False):
            x = self.LayerNorm(F.gelu(self.dense(h.float())))         # (B, N, E)
            return F.linear(x, word_embeddings.float(), self.bias)    # (B, N, V)


class Generator(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config, init=False)
        self.head = MaskedLMHead(config)
        self.apply(partial(init_weights, std=config.initializer_range))

    def forward(self, input_ids, token_type_ids=None, attention_mask=None, positions=None):
        """positions: (B, N) long -> logits (B, N, V) at those positions only; None -> (B, L, V)."""
        if isinstance(attention_mask, Unpadded):          # train_pretrain --unpad: real tokens only (Appendix A.1)
            return generator_forward_unpadded(self, input_ids, token_type_ids, attention_mask, positions)
        h = self.encoder(input_ids, token_type_ids, attention_mask)         # (B, L, D)
        if positions is not None:
            h = h.gather(1, positions[:, :, None].expand(-1, -1, h.shape[-1]))  # (B, N, D)
        return self.head(h, self.encoder.embeddings.word_embeddings.weight)


def tie_generator_to(generator: Generator, discriminator: "Discriminator") -> None:
    """Make the generator use the discriminator's whole embedding block (word, position, token type,
    LayerNorm): the very same module, so one parameter and one gradient (docs/paper.md §3). The MLM
    output matrix is the generator's word-embedding matrix, so it follows."""
    g, d = generator.config, discriminator.config
    for name in ("vocab_size", "embedding_size", "max_position_embeddings", "type_vocab_size"):
        if getattr(g, name) != getattr(d, name):
            raise ValueError(f"cannot share embeddings: generator {name}={getattr(g, name)}, "
                             f"discriminator {name}={getattr(d, name)}")
    generator.encoder.embeddings = discriminator.encoder.embeddings


# ---------------------------------------------------------------------------------------------
# 7. Discriminator and its RTD head                                          (docs/paper.md §3)
#    One logit per token, "was this token replaced?": dense (D -> D) -> GELU -> dense (D -> 1).
# ---------------------------------------------------------------------------------------------
class ReplacedTokenHead(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.dense = nn.Linear(config.hidden_size, config.hidden_size)
        self.prediction = nn.Linear(config.hidden_size, 1)

    def forward(self, h):
        return self.prediction(F.gelu(self.dense(h))).squeeze(-1)      # (B, L, D) -> (B, L)


class Discriminator(nn.Module):
    def __init__(self, config: ModelConfig):
        super().__init__()
        self.config = config
        self.encoder = Encoder(config, init=False)
        self.head = ReplacedTokenHead(config)
        self.apply(partial(init_weights, std=config.initializer_range))

    def forward(self, input_ids, token_type_ids=None, attention_mask=None):
        return self.head(self.encoder(input_ids, token_type_ids, attention_mask))   # (B, L) logits


def count_parameters(module: nn.Module) -> int:
    """Number of distinct parameters (a shared tensor counts once)."""
    return sum(p.numel() for p in module.parameters())


# ---------------------------------------------------------------------------------------------
# 8. Checkpoints in the Hugging Face layout     (released weights; HF modeling_electra.py; gpt-fast)
#    Our short names map to HF's through one literal table (as gpt-fast's convert_hf_checkpoint.py).
#    q/k/v are three HF Linears and one fused Linear here: from_hf_state_dict concatenates them,
#    to_hf_state_dict splits them. Every key must match, or a CheckpointError lists the mismatches.
# ---------------------------------------------------------------------------------------------
class CheckpointError(ValueError):
    """A checkpoint or config.json that does not fit our model; the message lists every mismatch."""


# Ours -> HF, by module path; ".weight"/".bias" are appended to both sides. {i} is the layer index.
# Encoder names are relative to the encoder (HF: "electra." inside ElectraForPreTraining/MaskedLM);
# a name not in this table is the same in both: embeddings.{word,position,token_type}_embeddings,
# embeddings.LayerNorm and embeddings_project.
HF_ENCODER_NAMES = {
    "layers.{i}.attention.qkv":         ("encoder.layer.{i}.attention.self.query",
                                         "encoder.layer.{i}.attention.self.key",
                                         "encoder.layer.{i}.attention.self.value"),
    "layers.{i}.attention.proj":        "encoder.layer.{i}.attention.output.dense",
    "layers.{i}.attention_norm":        "encoder.layer.{i}.attention.output.LayerNorm",
    "layers.{i}.ffn.dense_in":          "encoder.layer.{i}.intermediate.dense",
    "layers.{i}.ffn.dense_out":         "encoder.layer.{i}.output.dense",
    "layers.{i}.ffn_norm":              "encoder.layer.{i}.output.LayerNorm",
}
HF_HEAD_NAMES = {
    "Discriminator": {"head.dense":      "discriminator_predictions.dense",
                      "head.prediction": "discriminator_predictions.dense_prediction"},
    "Generator":     {"head.dense":      "generator_predictions.dense",
                      "head.LayerNorm":  "generator_predictions.LayerNorm",
                      "head":            "generator_lm_head"},     # head.bias -> generator_lm_head.bias
}
HF_ARCHITECTURES = {"Discriminator": "ElectraForPreTraining", "Generator": "ElectraForMaskedLM",
                    "Encoder": "ElectraModel"}
HF_TIED_KEY = "generator_lm_head.weight"        # = the word embeddings; older transformers saved a copy
HF_IGNORED_KEYS = {"embeddings.position_ids", "electra.embeddings.position_ids",   # buffers that older
                   "embeddings.token_type_ids", "electra.embeddings.token_type_ids"}  # versions saved


def hf_names(key: str, kind: str) -> tuple:
    """The HF key(s) holding our parameter `key` of a model of class `kind` (3 keys for a fused qkv)."""
    module, param = key.rsplit(".", 1)
    if kind != "Encoder" and not module.startswith("encoder."):
        return (HF_HEAD_NAMES[kind][module] + "." + param,)
    prefix, module = ("", module) if kind == "Encoder" else ("electra.", module.removeprefix("encoder."))
    layer = re.match(r"layers\.(\d+)\.", module)
    pattern = re.sub(r"^layers\.\d+\.", "layers.{i}.", module)
    names = HF_ENCODER_NAMES.get(pattern, pattern)
    names = names if isinstance(names, tuple) else (names,)
    return tuple(prefix + n.format(i=layer.group(1) if layer else "") + "." + param for n in names)


def to_hf_state_dict(model: nn.Module) -> dict:
    """Our state dict renamed to HF keys, with the fused qkv split back into query/key/value."""
    kind, out = type(model).__name__, {}
    for key, tensor in model.state_dict().items():
        names = hf_names(key, kind)
        for name, part in zip(names, tensor.chunk(len(names), dim=0)):
            out[name] = part.detach().clone()                 # own storage: no views into qkv
    if kind == "Generator":
        out[HF_TIED_KEY] = model.encoder.embeddings.word_embeddings.weight.detach().clone()
    return out


def from_hf_state_dict(hf: dict, model: nn.Module, source: str = "checkpoint") -> dict:
    """Our state dict from HF-keyed tensors; raises CheckpointError listing every mismatch."""
    kind, ours, used, missing, bad_shape = type(model).__name__, {}, set(), [], []
    for key, target in model.state_dict().items():
        names = hf_names(key, kind)
        missing += [n for n in names if n not in hf]
        used.update(n for n in names if n in hf)
        if any(n not in hf for n in names):
            continue
        ours[key] = torch.cat([hf[n] for n in names]) if len(names) > 1 else hf[names[0]]
        if ours[key].shape != target.shape:
            bad_shape.append(f"{' + '.join(names)}: {tuple(ours[key].shape)} in the checkpoint, "
                             f"{tuple(target.shape)} expected")
    if kind == "Generator" and HF_TIED_KEY in hf:
        used.add(HF_TIED_KEY)
        word = hf.get(hf_names("encoder.embeddings.word_embeddings.weight", kind)[0])
        if word is not None and not torch.equal(hf[HF_TIED_KEY], word):
            bad_shape.append(f"{HF_TIED_KEY} differs from the word embeddings (this model ties them)")
    unexpected = sorted(set(hf) - used - HF_IGNORED_KEYS)
    problems = ([f"missing: {', '.join(missing)}"] if missing else []) + \
               ([f"unexpected: {', '.join(unexpected)}"] if unexpected else []) + bad_shape
    if problems:
        raise CheckpointError(f"{source} does not fit {kind}({model.config}):\n  " + "\n  ".join(problems))
    return ours


def load_hf_checkpoint(directory, kind=None):
    """A Discriminator or Generator (in eval mode) with the weights of an HF ELECTRA checkpoint directory.
    kind: "discriminator" or "generator"; None reads it from config.json's "architectures"."""
    config, raw = read_hf_config(directory)
    by_arch = {"ElectraForPreTraining": "discriminator", "ElectraForMaskedLM": "generator"}
    kind = kind or by_arch.get((raw.get("architectures") or [None])[0])
    if kind not in ("discriminator", "generator"):
        raise CheckpointError(f"{directory}: architectures {raw.get('architectures')} holds no ELECTRA "
                              "pre-training head; pass kind=, or use load_hf_encoder for the encoder")
    if kind == "generator" and raw.get("tie_word_embeddings") is False:
        raise CheckpointError(f"{directory}: tie_word_embeddings is false; this generator always ties them")
    model = (Discriminator if kind == "discriminator" else Generator)(config)
    model.load_state_dict(from_hf_state_dict(read_state_dict(directory), model, source=str(directory)))
    return model.eval()                    # as transformers' from_pretrained: call .train() to fine-tune


def load_hf_encoder(directory) -> Encoder:
    """The Encoder (in eval mode) of any ELECTRA checkpoint, pre-training or fine-tuned; heads are ignored."""
    config, _ = read_hf_config(directory)
    hf = read_state_dict(directory)
    if any(k.startswith("electra.") for k in hf):            # a model with heads: keep the body
        hf = {k[len("electra."):]: v for k, v in hf.items() if k.startswith("electra.")}
    encoder = Encoder(config)
    encoder.load_state_dict(from_hf_state_dict(hf, encoder, source=str(directory)))
    return encoder.eval()


def save_hf_checkpoint(model, directory, vocab_file=None, lowercase=True, dtype=None, head=None) -> None:
    """Write config.json + pytorch_model.bin that transformers' from_pretrained loads; with a vocab_file,
    also vocab.txt and the tokenizer files, so AutoTokenizer tokenizes as our Tokenizer(lowercase) does.
    dtype: store the weights in it (float16 halves a file; it loads back into fp32). head: (config entries,
    HF-keyed tensors) of a task head on an Encoder (finetune.py): the encoder then goes under "electra."."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    kind = type(model).__name__
    if kind not in HF_ARCHITECTURES or (head is not None and kind != "Encoder"):
        raise TypeError(f"save_hf_checkpoint takes an Encoder, Generator or Discriminator (a task head only "
                        f"with an Encoder), not {kind} (save the raw module, not its torch.compile or DDP wrapper)")
    config = {"architectures": [HF_ARCHITECTURES[kind]], "model_type": "electra", "hidden_act": "gelu",
              "position_embedding_type": "absolute", "tie_word_embeddings": True, **asdict(model.config)}
    state = to_hf_state_dict(model)
    if head is not None:
        head_config, head_state = head
        config.update(head_config)
        state = {**{"electra." + k: v for k, v in state.items()}, **head_state}
    if dtype is not None:
        state = {k: v.to(dtype) if v.is_floating_point() else v for k, v in state.items()}
        config["dtype"] = str(dtype).removeprefix("torch.")
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    tmp = directory / "pytorch_model.bin.tmp"
    torch.save(state, tmp)
    os.replace(tmp, directory / "pytorch_model.bin")        # never a half-written checkpoint
    if vocab_file is not None:
        shutil.copyfile(vocab_file, directory / "vocab.txt")
        write_tokenizer_files(directory, lowercase, model.config.max_position_embeddings)


# =============================================================================================
# Appendix: unpadded batches, file plumbing, task-head names. A student can skip it: speed and I/O, not the method.
# =============================================================================================

# A.1 Unpadded batches (train_pretrain --unpad; ModernBERT's and MosaicBERT's way, docs/paper.md §5)
#     The T real tokens of a padded (B, L) batch go through every layer as one (T, D) row; attention runs
#     per sequence (PyTorch's variable-length flash kernel on CUDA). Encoder and Generator hand an
#     Unpadded attention_mask here; the results are the padded path's at the real tokens, minus its waste.
#     Shapes: T real tokens in the batch, P masked positions among them.
try:
    from torch.nn.attention.varlen import varlen_attn      # torch >= 2.10; its kernel is CUDA-only
except ImportError:
    varlen_attn = None


@dataclass
class Unpadded:
    """Where the real tokens of a padded (B, L) batch sit, for a model that sees only those T tokens.
    Sequence b is tokens cu_seqlens[b]:cu_seqlens[b + 1]; built on the host by unpad() (no device read)."""
    indices: torch.Tensor        # (T,) long: flat positions in the (B * L) batch, in order
    positions: torch.Tensor      # (T,) long: each token's column, its position id in the padded path
    cu_seqlens: torch.Tensor     # (B + 1,) int32: where each sequence starts
    slots: torch.Tensor          # (T,) long: flat positions in a (B * max_len) re-padding, for the fallback
    max_len: int                 # the longest sequence
    batch_size: int

    def to(self, device, non_blocking=False) -> "Unpadded":
        tensors = (self.indices, self.positions, self.cu_seqlens, self.slots)
        return Unpadded(*(t.to(device, non_blocking=non_blocking) for t in tensors), self.max_len, self.batch_size)


def unpad(attention_mask) -> Unpadded:
    """The Unpadded layout of a (B, L) mask (True/1 = real token). Call it on the loader's host mask,
    then .to(device): on a device mask, nonzero() and max() would each wait for the GPU."""
    mask = attention_mask.bool()
    B, L = mask.shape
    lengths = mask.sum(-1)
    indices = mask.flatten().nonzero().squeeze(-1)
    starts = F.pad(lengths.cumsum(0), (1, 0))                          # (B + 1,)
    rows, max_len = indices // L, int(lengths.max())
    slots = rows * max_len + torch.arange(len(indices), device=mask.device) - starts[rows]   # rank in its sequence
    return Unpadded(indices, indices % L, starts.to(torch.int32), slots, max_len, B)


def can_use_varlen_kernel(q, dropout_p) -> bool:
    """varlen_attn is FlashAttention: CUDA, fp16/bf16 only, no dropout. An fp32 tensor reaches here
    when a bf16 run evaluates outside autocast, as train_pretrain's held-out scoring does."""
    return (varlen_attn is not None and q.is_cuda and dropout_p == 0.0
            and q.dtype in (torch.float16, torch.bfloat16))


def varlen_attention(q, k, v, unpadded: Unpadded, dropout_p=0.0):
    """Attention within each sequence: q, k, v (T, H, K) -> (T, H, K).
    CUDA in fp16/bf16 without attention dropout: varlen_attn, no padding at all. CHOICE: otherwise (CPU,
    fp32, or the recipe's attention dropout 0.1, which varlen_attn lacks) SDPA on a copy re-padded to the
    longest sequence, (B, H, max_len, K), with the padded keys hidden: the same results, the padding paid
    in attention only (bench/results_pretrain.md §2b, §2d)."""
    u = unpadded
    if can_use_varlen_kernel(q, dropout_p):
        return varlen_attn(q, k, v, u.cu_seqlens, u.cu_seqlens, u.max_len, u.max_len)
    B, M = u.batch_size, u.max_len

    def pad(t):                                                        # (T, H, K) -> (B, H, M, K)
        padded = t.new_zeros(B * M, *t.shape[1:]).index_copy(0, u.slots, t)
        return padded.view(B, M, *t.shape[1:]).transpose(1, 2)
    real = torch.zeros(B * M, dtype=torch.bool, device=q.device).index_fill_(0, u.slots, True)
    y = F.scaled_dot_product_attention(pad(q), pad(k), pad(v), attn_mask=real.view(B, 1, 1, M), dropout_p=dropout_p)
    return y.transpose(1, 2).flatten(0, 1)[u.slots]                         # (T, H, K)


def encoder_forward_unpadded(encoder: Encoder, input_ids, token_type_ids, unpadded: Unpadded):
    """Encoder.forward on the real tokens only: input_ids, token_type_ids (T,) -> (T, D), the padded
    path's hidden states at those tokens (token_type_ids are required here). Each layer repeats
    Block.forward, with SelfAttention's own projections around varlen_attention in place of SDPA."""
    embeddings = encoder.embeddings                          # Embeddings.forward at each token's own position
    x = embeddings.word_embeddings(input_ids) + embeddings.position_embeddings(unpadded.positions)   # (T, E)
    x = embeddings.dropout(embeddings.LayerNorm(x + embeddings.token_type_embeddings(token_type_ids)))
    if encoder.embeddings_project is not None:
        x = encoder.embeddings_project(x)                                      # (T, D)
    T, D = x.shape
    for block in encoder.layers:
        attention = block.attention
        dropout_p = attention.dropout_p if attention.training else 0.0
        q, k, v = attention.qkv(x).view(T, 3, attention.num_heads, D // attention.num_heads).unbind(1)  # 3 x (T, H, K)
        y = attention.proj(varlen_attention(q, k, v, unpadded, dropout_p).reshape(T, D))              # (T, D)
        x = block.attention_norm(x + block.dropout(y))
        x = block.ffn_norm(x + block.dropout(block.ffn(x)))
    return x


def generator_forward_unpadded(generator: Generator, input_ids, token_type_ids, unpadded: Unpadded, positions=None):
    """Generator.forward on the T real tokens: positions (P,) index them -> logits (P, V); None -> (T, V)."""
    h = generator.encoder(input_ids, token_type_ids, unpadded)                          # (T, D)
    if positions is not None:
        h = h[positions]                                                                # (P, D)
    return generator.head(h, generator.encoder.embeddings.word_embeddings.weight)


# A.2 Reading checkpoint files, and the tokenizer files transformers reads beside vocab.txt
def _read_safetensors(path: Path) -> dict:
    """Tensors of a .safetensors file: 8-byte little-endian header size, a JSON header
    {name: {dtype, shape, data_offsets}}, then the raw little-endian bytes. Needs only json + torch."""
    dtypes = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
              "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
              "U8": torch.uint8, "BOOL": torch.bool}
    data = bytearray(path.stat().st_size)                    # writable, so frombuffer shares it silently
    with open(path, "rb") as f:
        f.readinto(data)
    n = int.from_bytes(data[:8], "little")
    try:
        header = json.loads(data[8:8 + n])
    except ValueError as e:
        raise CheckpointError(f"{path}: not a safetensors file (bad header: {e})") from None
    header.pop("__metadata__", None)
    out = {}
    for name, info in header.items():
        dtype = dtypes.get(info["dtype"])
        if dtype is None:
            raise CheckpointError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
        start, end = info["data_offsets"]
        count = (end - start) // dtype.itemsize
        t = torch.frombuffer(data, dtype=dtype, count=count, offset=8 + n + start) if count else \
            torch.empty(0, dtype=dtype)                           # frombuffer refuses count 0
        out[name] = t.reshape(info["shape"])
    return out


def read_hf_config(directory) -> tuple:
    """(ModelConfig, raw dict) from directory/config.json; CheckpointError lists every unusable value."""
    path = Path(directory) / "config.json"
    if not path.is_file():
        raise CheckpointError(f"{path}: no config.json")
    try:
        raw = json.loads(path.read_text())
    except ValueError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    required = ("vocab_size", "embedding_size", "hidden_size", "num_hidden_layers", "num_attention_heads",
                "intermediate_size")
    expected = {"model_type": "electra", "hidden_act": "gelu", "position_embedding_type": "absolute",
                "is_decoder": False, "add_cross_attention": False}
    problems = [f"{k} is missing" for k in required if k not in raw]
    problems += [f"{k} is {raw[k]!r}, this model supports only {v!r}" for k, v in expected.items()
                 if k in raw and raw[k] != v]
    if "model_type" not in raw:
        problems.append("model_type is missing (expected 'electra')")
    if problems:
        raise CheckpointError(f"{path}: unsupported config:\n  " + "\n  ".join(problems))
    names = {f.name for f in fields(ModelConfig)}
    return ModelConfig(**{k: v for k, v in raw.items() if k in names}), raw


def read_state_dict(directory_or_file) -> dict:
    """The tensors of model.safetensors or pytorch_model.bin (a file, or a directory holding one)."""
    path = Path(directory_or_file)
    if path.is_dir():
        found = [path / f for f in ("model.safetensors", "pytorch_model.bin") if (path / f).is_file()]
        if not found:
            raise CheckpointError(f"{path}: no model.safetensors or pytorch_model.bin in this directory")
        path = found[0]
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    if path.suffix == ".safetensors":
        return _read_safetensors(path)
    try:
        return torch.load(path, map_location="cpu", weights_only=True)   # tensors only: no code runs
    except Exception as e:                                   # pickle, zip and weights_only errors alike
        raise CheckpointError(f"{path}: cannot read as a PyTorch state dict ({type(e).__name__}: {e})") from None


SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]", "cls_token": "[CLS]",
                  "mask_token": "[MASK]"}


def write_tokenizer_files(directory, lowercase, max_length) -> None:
    """The two files transformers reads beside vocab.txt: the casing (BERT strips accents exactly when it
    lowercases, as tokenizer.py does) and the special tokens, which tokenizer.py fixes by name."""
    config = {"tokenizer_class": "ElectraTokenizer", "do_lower_case": bool(lowercase), "strip_accents": None,
              "tokenize_chinese_chars": True, "model_max_length": max_length, **SPECIAL_TOKENS}
    (Path(directory) / "tokenizer_config.json").write_text(json.dumps(config, indent=2) + "\n")
    (Path(directory) / "special_tokens_map.json").write_text(json.dumps(SPECIAL_TOKENS, indent=2) + "\n")


def read_do_lower_case(directory, default=None):
    """do_lower_case from a checkpoint's tokenizer_config.json; `default` when it has none (older
    exports, other tools)."""
    path = Path(directory) / "tokenizer_config.json"
    if not path.is_file():
        return default
    try:
        value = json.loads(path.read_text()).get("do_lower_case")
    except ValueError as e:
        raise CheckpointError(f"{path}: not valid JSON ({e})") from None
    return default if value is None else bool(value)


# A.3 Task heads of fine-tuned models in the HF layout (finetune.py's save_finetuned / load_finetuned)
def hf_head_key(key, keys) -> str:
    """Our head's parameter name under transformers' module names: "out.weight" -> "classifier.weight"."""
    module, param = key.rsplit(".", 1)
    return f"{keys[module]}.{param}"


def head_state(hf, head, keys, source) -> dict:
    """Our head's state dict from the checkpoint's head tensors; each must be there, and nothing else."""
    wanted = {hf_head_key(key, keys): key for key in head.state_dict()}     # HF name -> ours
    missing = sorted(set(wanted) - set(hf))
    unexpected = sorted(k for k in hf if not k.startswith("electra.") and k not in wanted)
    if missing or unexpected:
        raise CheckpointError(f"{source}: head tensors missing: {missing or 'none'}; "
                              f"unexpected: {unexpected or 'none'}")
    return {key: hf[name] for name, key in wanted.items()}
