"""electramed.py: the encoder, generator, discriminator and their Hugging Face checkpoints.

Oracles: transformers' ElectraForPreTraining / ElectraForMaskedLM / ElectraModel (outputs and
parameter counts) and ElectraForSequenceClassification (task-head names), the safetensors library
(our 25-line reader), and a written-out softmax attention (the SDPA path). Also: the paths agree
(no mask vs all-true mask, masked-only vs full MLM head, unpadded vs padded, compiled vs eager, bf16
autocast vs fp32), the generator shares the discriminator's embeddings, and a bad checkpoint raises a
CheckpointError naming what did not match.
Run: python -m pytest tests/test_electramed.py      (base-shaped parity: -m slow)
"""
import json
import math
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

import pytest
import safetensors.torch
import torch
import torch.nn.functional as F
from transformers import (ElectraConfig, ElectraForMaskedLM, ElectraForPreTraining, ElectraForSequenceClassification,
                          ElectraModel)

import electramed as em

REPO = Path(__file__).resolve().parent.parent
HF_CLASSES = {"discriminator": ElectraForPreTraining, "generator": ElectraForMaskedLM, "encoder": ElectraModel}
OURS = {"discriminator": em.Discriminator, "generator": em.Generator, "encoder": em.Encoder}


def shaped_config(size, kind, vocab_size=31090):
    """Our config of a preset size; the generator gets its derived (narrower) shape."""
    config = em.model_config(size, vocab_size)
    return em.generator_config(config, em.GENERATOR_FRACTION[size]) if kind == "generator" else config


def perturb_(module, scale=0.05):
    """Move every parameter off its init (LayerNorm 1/0, zero biases), so a swapped key shows up."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(torch.randn_like(p) * scale)


def batches(vocab_size, B=3, L=24):
    """(input_ids, token_type_ids, attention_mask) with padding and two segments, and without both."""
    ids = torch.randint(0, vocab_size, (B, L))
    types = (torch.arange(L) >= L // 2).long().expand(B, L).contiguous()
    mask = torch.ones(B, L, dtype=torch.long)
    mask[1, L - L // 3:] = 0
    mask[-1, 5:] = 0
    return [(ids, types, mask), (ids, None, None)]


def ours_outputs(model, kind, ids, types, mask):
    """(hidden states, logits or None) of one of our models."""
    encoder = model if kind == "encoder" else model.encoder
    hidden = encoder(ids, types, mask)
    return hidden, (None if kind == "encoder" else model(ids, types, mask))


def hf_outputs(model, kind, ids, types, mask):
    out = model(ids, attention_mask=mask, token_type_ids=types, output_hidden_states=True)
    return out.hidden_states[-1], (None if kind == "encoder" else out.logits)


def assert_close_to_scale(ours, reference, tol=1e-5):
    """Equal within tol relative to the tensor's scale (max |value|, at least 1).

    fp32 sums in another order differ by ~1e-7 of the largest value per term: base-shaped generator
    logits (|y| up to ~7) differ from transformers' by up to 1.1e-5 depending on the thread count,
    while a wrong key or a swapped q/k/v gives differences of order 1."""
    scale = max(1.0, reference.abs().max().item())
    torch.testing.assert_close(ours, reference, rtol=tol, atol=tol * scale)


def assert_same_outputs(ours, hf, kind, vocab_size):
    for ids, types, mask in batches(vocab_size):
        h_ours, y_ours = ours_outputs(ours, kind, ids, types, mask)
        h_hf, y_hf = hf_outputs(hf, kind, ids, types, mask)
        assert_close_to_scale(h_ours, h_hf)
        if y_hf is not None:
            assert_close_to_scale(y_ours, y_hf)


PARITY = [(s, k, f) for s in ("tiny", "small") for k in HF_CLASSES for f in ("safetensors", "bin")] + \
         [pytest.param("base", k, "safetensors", marks=pytest.mark.slow) for k in HF_CLASSES]


# ----- Hugging Face -> ours ------------------------------------------------------------------
@pytest.mark.parametrize("size,kind,fmt", PARITY)
@torch.no_grad()
def test_hf_checkpoint_loads_with_equal_outputs(tmp_path, size, kind, fmt):
    config = shaped_config(size, kind)
    hf = HF_CLASSES[kind](ElectraConfig(**asdict(config))).eval()
    perturb_(hf)
    hf.save_pretrained(tmp_path)                       # transformers 5 writes model.safetensors only
    if fmt == "bin":                                   # the released ELECTRAMed layout
        (tmp_path / "model.safetensors").unlink()
        torch.save(hf.state_dict(), tmp_path / "pytorch_model.bin")
    ours = em.load_hf_encoder(tmp_path) if kind == "encoder" else em.load_hf_checkpoint(tmp_path)
    assert isinstance(ours, OURS[kind]) and ours.config == config
    assert_same_outputs(ours, hf, kind, config.vocab_size)


def test_load_hf_encoder_takes_the_body_of_a_pretraining_checkpoint(tmp_path):
    config = shaped_config("tiny", "discriminator", 100)
    hf = ElectraForPreTraining(ElectraConfig(**asdict(config))).eval()
    perturb_(hf)
    hf.save_pretrained(tmp_path)
    encoder = em.load_hf_encoder(tmp_path)
    assert_same_outputs(encoder, hf.electra, "encoder", 100)


# ----- ours -> Hugging Face ------------------------------------------------------------------
@pytest.mark.parametrize("size,kind", [(s, k) for s in ("tiny", "small") for k in HF_CLASSES] +
                         [pytest.param("base", k, marks=pytest.mark.slow) for k in HF_CLASSES])
@torch.no_grad()
def test_saved_checkpoint_loads_in_transformers_with_equal_outputs(tmp_path, scivocab, size, kind):
    config = shaped_config(size, kind)
    ours = OURS[kind](config).eval()
    perturb_(ours)
    em.save_hf_checkpoint(ours, tmp_path, vocab_file=scivocab)
    hf, info = HF_CLASSES[kind].from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert (tmp_path / "vocab.txt").read_bytes() == scivocab.read_bytes()
    assert_same_outputs(ours, hf.eval(), kind, config.vocab_size)


@pytest.mark.parametrize("lowercase", [True, False])
@torch.no_grad()
def test_exported_tokenizer_files_give_our_ids_in_transformers(tmp_path, scivocab, data_dir, lowercase):
    """An export with its vocabulary carries tokenizer_config.json + special_tokens_map.json:
    AutoTokenizer.from_pretrained(dir) then gives our Tokenizer's ids on real NCBI-disease text (cased
    and uncased, so the casing really travels), and read_do_lower_case reads the casing back."""
    from transformers import AutoTokenizer
    from tokenizer import Tokenizer
    em.save_hf_checkpoint(em.Discriminator(shaped_config("tiny", "discriminator")), tmp_path, vocab_file=scivocab,
                          lowercase=lowercase)
    hf = AutoTokenizer.from_pretrained(tmp_path)
    ours = Tokenizer.from_vocab_file(scivocab, lowercase=lowercase)
    words = [line.split()[0] for line in (data_dir / "ncbi_disease" / "train.txt").read_text().splitlines()[:3000]
             if line.strip()]
    texts = [" ".join(words[i:i + 40]) + " Müller-Ölé" for i in range(0, len(words), 40)]
    assert any(w != w.lower() for w in words)
    for text in texts:
        assert hf(text)["input_ids"] == ours.encode(text)["input_ids"], text
    assert em.read_do_lower_case(tmp_path) is lowercase and em.read_do_lower_case(tmp_path / "none") is None


@torch.no_grad()
def test_fp16_export_halves_the_file_and_loads_back_into_fp32(tmp_path):
    """dtype=torch.float16: the stored tensors are fp16 (about half the bytes), and both our loader and
    transformers load them into fp32 models whose weights are the fp16-rounded originals."""
    ours = em.Discriminator(shaped_config("tiny", "discriminator", 3000)).eval()
    perturb_(ours)
    em.save_hf_checkpoint(ours, tmp_path / "fp32")
    em.save_hf_checkpoint(ours, tmp_path / "fp16", dtype=torch.float16)
    size = lambda d: (tmp_path / d / "pytorch_model.bin").stat().st_size
    assert 0.45 < size("fp16") / size("fp32") < 0.56
    loaded = em.load_hf_checkpoint(tmp_path / "fp16")
    for (name, a), (_, b) in zip(ours.state_dict().items(), loaded.state_dict().items()):
        assert b.dtype == a.dtype and torch.equal(b, a.half().to(a.dtype) if a.is_floating_point() else a), name
    hf = HF_CLASSES["discriminator"].from_pretrained(tmp_path / "fp16", dtype=torch.float32)
    assert_same_outputs(loaded, hf.eval(), "discriminator", ours.config.vocab_size)


COMMITTED_MODELS = sorted(p.parent.relative_to(REPO) for p in [*REPO.glob("models/*/config.json"),
                                                             *REPO.glob("records/*/models/*/config.json")])


@pytest.mark.parametrize("folder", COMMITTED_MODELS, ids=str)
@torch.no_grad()
def test_every_committed_model_has_its_weights_and_loads_in_transformers(folder):
    """Each model folder the repository ships holds its fp16 weights (.gitignore keeps *.bin out of git
    except in these folders), and transformers loads them with no key missing and our outputs."""
    folder = REPO / folder
    assert (folder / "pytorch_model.bin").is_file(), f"{folder}: config.json without pytorch_model.bin"
    kind = "discriminator" if "ElectraForPreTraining" in (folder / "config.json").read_text() else "encoder"
    hf, info = HF_CLASSES[kind].from_pretrained(folder, dtype=torch.float32, output_loading_info=True)
    assert not info["missing_keys"] and not info["mismatched_keys"], info
    ours = em.load_hf_checkpoint(folder) if kind == "discriminator" else em.load_hf_encoder(folder)
    assert_same_outputs(ours.eval(), hf.eval(), kind, ours.config.vocab_size)


class ClassifierHead(torch.nn.Module):
    """The shape of transformers' ElectraClassificationHead (dense D -> D, out_proj D -> labels), our names."""

    def __init__(self, hidden, labels):
        super().__init__()
        self.dense, self.out = torch.nn.Linear(hidden, hidden), torch.nn.Linear(hidden, labels)


CLASSIFIER_KEYS = {"dense": "classifier.dense", "out": "classifier.out_proj"}     # ours -> transformers'


def test_hf_head_key_renames_the_module_and_keeps_the_parameter():
    assert em.hf_head_key("out.weight", {"out": "classifier"}) == "classifier.weight"
    assert em.hf_head_key("dense.bias", CLASSIFIER_KEYS) == "classifier.dense.bias"
    assert em.hf_head_key("out.weight", CLASSIFIER_KEYS) == "classifier.out_proj.weight"


@torch.no_grad()
def test_head_saved_under_transformers_names_loads_in_transformers_and_back(tmp_path):
    """An Encoder saved with a task head named by hf_head_key: transformers'
    ElectraForSequenceClassification finds every tensor (none missing or unexpected) and holds our head's
    weights; head_state reads the same head back from the file, tensor for tensor."""
    encoder, head = em.Encoder(shaped_config("tiny", "encoder", 100)), ClassifierHead(64, 3)
    perturb_(head)
    state = {em.hf_head_key(k, CLASSIFIER_KEYS): v for k, v in head.state_dict().items()}
    config = {"architectures": ["ElectraForSequenceClassification"], "num_labels": 3}
    em.save_hf_checkpoint(encoder, tmp_path, head=(config, state))
    hf, info = ElectraForSequenceClassification.from_pretrained(tmp_path, output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"], info
    assert torch.equal(hf.classifier.out_proj.weight, head.out.weight)
    assert torch.equal(hf.classifier.dense.bias, head.dense.bias)
    back = ClassifierHead(64, 3)
    back.load_state_dict(em.head_state(em.read_state_dict(tmp_path), back, CLASSIFIER_KEYS, tmp_path))
    for (name, a), (_, b) in zip(head.state_dict().items(), back.state_dict().items()):
        assert torch.equal(a, b), name


def test_head_state_lists_missing_and_unexpected_head_tensors():
    """The encoder's "electra." tensors are not the head's business; any other tensor must be a head key."""
    head = ClassifierHead(8, 2)
    hf = {em.hf_head_key(k, CLASSIFIER_KEYS): v for k, v in head.state_dict().items()}
    hf["electra.embeddings.word_embeddings.weight"] = torch.zeros(1)
    assert em.head_state(hf, head, CLASSIFIER_KEYS, "ckpt").keys() == head.state_dict().keys()
    del hf["classifier.out_proj.bias"]
    with pytest.raises(em.CheckpointError,
                       match=r"^ckpt: head tensors missing: \['classifier.out_proj.bias'\]; unexpected: none$"):
        em.head_state(hf, head, CLASSIFIER_KEYS, "ckpt")
    hf["classifier.out_proj.bias"], hf["qa_outputs.weight"] = torch.zeros(2), torch.zeros(1)
    with pytest.raises(em.CheckpointError, match=r"missing: none; unexpected: \['qa_outputs.weight'\]$"):
        em.head_state(hf, head, CLASSIFIER_KEYS, "ckpt")


@pytest.mark.parametrize("kind", ["discriminator", "generator"])
def test_save_then_load_gives_identical_tensors(tmp_path, kind):
    ours = OURS[kind](shaped_config("tiny", kind, 100))
    perturb_(ours)
    em.save_hf_checkpoint(ours, tmp_path)
    loaded = em.load_hf_checkpoint(tmp_path)
    assert type(loaded) is type(ours) and loaded.config == ours.config
    for (name, a), (_, b) in zip(ours.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name


@pytest.mark.parametrize("size", list(em.SIZES))
def test_parameter_counts_equal_transformers(size):
    with torch.device("meta"):                                 # counts only: no memory, no init
        for kind in HF_CLASSES:
            config = shaped_config(size, kind)
            hf = HF_CLASSES[kind](ElectraConfig(**asdict(config)))
            assert em.count_parameters(OURS[kind](config)) == sum(p.numel() for p in hf.parameters()), kind


def test_safetensors_reader_equals_the_library(tmp_path):
    tensors = {"f32": torch.randn(3, 4), "f16": torch.randn(5).half(), "bf16": torch.randn(2, 3).bfloat16(),
               "i64": torch.arange(7), "empty": torch.zeros(0, 3), "b": torch.tensor([True, False])}
    safetensors.torch.save_file(tensors, tmp_path / "model.safetensors", metadata={"format": "pt"})
    ours, ref = em.read_state_dict(tmp_path), safetensors.torch.load_file(tmp_path / "model.safetensors")
    assert ours.keys() == ref.keys()
    for name in ref:
        assert ours[name].dtype == ref[name].dtype and torch.equal(ours[name], ref[name]), name


# ----- the paths agree -----------------------------------------------------------------------
def written_out_attention(attn, x, mask):
    """softmax(Q K^T / sqrt(K) + mask) V, head by head, as BERT writes it."""
    B, L, D = x.shape
    H = attn.num_heads
    q, k, v = attn.qkv(x).split(D, dim=-1)
    q, k, v = (t.view(B, L, H, D // H).transpose(1, 2) for t in (q, k, v))   # (B, H, L, K)
    scores = q @ k.transpose(-1, -2) / math.sqrt(D // H)                      # (B, H, L, L)
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    y = scores.softmax(-1) @ v
    return attn.proj(y.transpose(1, 2).reshape(B, L, D))


@torch.no_grad()
def test_sdpa_attention_equals_written_out_softmax():
    attn = em.SelfAttention(em.model_config("tiny", 100)).eval()
    perturb_(attn, 0.2)
    x = torch.randn(3, 10, 64)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[1, 6:] = False
    for m in (None, mask[:, None, None, :]):
        torch.testing.assert_close(attn(x, m), written_out_attention(attn, x, m), rtol=0, atol=1e-5)


@torch.no_grad()
def test_no_mask_equals_all_true_mask():
    disc = em.Discriminator(em.model_config("tiny", 100)).eval()
    ids = torch.randint(0, 100, (2, 16))
    ones = torch.ones(2, 16, dtype=torch.long)
    torch.testing.assert_close(disc(ids), disc(ids, attention_mask=ones), rtol=0, atol=1e-6)


def tiny_pair(vocab_size=100):
    disc = em.Discriminator(em.model_config("tiny", vocab_size))
    gen = em.Generator(em.generator_config(disc.config, em.GENERATOR_FRACTION["tiny"]))
    em.tie_generator_to(gen, disc)
    return gen.eval(), disc.eval()


@torch.no_grad()
def test_masked_only_head_equals_full_head_gathered():
    gen, _ = tiny_pair()
    ids, _, mask = batches(100)[0]
    positions = torch.randint(0, 24, (3, 5))
    full = gen(ids, attention_mask=mask)                               # (B, L, V)
    gathered = full.gather(1, positions[:, :, None].expand(-1, -1, full.shape[-1]))
    torch.testing.assert_close(gen(ids, attention_mask=mask, positions=positions), gathered, rtol=0, atol=1e-5)


@torch.no_grad()
def test_compiled_generator_equals_eager():
    """CPU inductor on the generator: encoder, padding mask, fixed-size gather and the tied head."""
    gen, _ = tiny_pair()
    ids, types, mask = batches(100, B=2, L=16)[0]
    positions = torch.tensor([[1, 4, 7], [2, 3, 9]])
    torch.testing.assert_close(torch.compile(gen)(ids, types, mask, positions), gen(ids, types, mask, positions),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.slow
@torch.no_grad()
def test_compiled_discriminator_equals_eager():
    _, disc = tiny_pair()
    compiled = torch.compile(disc)
    for ids, types, mask in batches(100, B=2, L=16):
        torch.testing.assert_close(compiled(ids, types, mask), disc(ids, types, mask), rtol=1e-4, atol=1e-5)


@torch.no_grad()
def test_bf16_autocast_forward_is_close_to_fp32():
    """The CPU twin of the CUDA bf16 path: same graph, bf16 matmuls, fp32 LayerNorm; the generator's
    MLM head stays fp32 (its logits feed the sampler: electramed.py, MaskedLMHead)."""
    gen, disc = tiny_pair()
    ids, types, mask = batches(100)[0]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low_disc, low_gen = disc(ids, types, mask), gen(ids, types, mask)
    assert low_disc.dtype == torch.bfloat16 and low_gen.dtype == torch.float32
    torch.testing.assert_close(low_disc.float(), disc(ids, types, mask), rtol=0, atol=5e-2)
    torch.testing.assert_close(low_gen.float(), gen(ids, types, mask), rtol=0, atol=5e-2)


# ----- unpadded batches: the real tokens only, equal to the padded path -------------------------
@pytest.fixture(scope="module")
def packed_batch(data_dir, tmp_path_factory):
    """32 real packed PubMed examples of length 128 (ELECTRA's packing leaves padded tails)."""
    from data import PretrainingData, prepare_corpus
    shards = prepare_corpus([data_dir / "pubmed" / "pubmed_sample.txt"], data_dir / "vocab" / "scivocab_uncased.txt",
                            tmp_path_factory.mktemp("shards"), max_len=128, workers=1)
    return PretrainingData(shards, batch_size=32).next_batch()


def test_unpadded_equals_padded_on_real_packed_batches(packed_batch):
    """Small-shaped generator + discriminator (real vocabulary, perturbed weights, dropout 0): the
    unpadded forward on the T real tokens equals the padded forward at those tokens (hidden states,
    RTD logits, MLM logits at chosen positions) to 1e-5 of scale, and so do all the gradients."""
    ids, types, mask = packed_batch["input_ids"], packed_batch["token_type_ids"], packed_batch["attention_mask"]
    assert 0.1 < 1 - mask.float().mean() < 0.9                       # really padded
    config = em.model_config("small", 31090, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    disc, gen = em.Discriminator(config), em.Generator(em.generator_config(config, 0.25))
    em.tie_generator_to(gen, disc)
    perturb_(disc)
    perturb_(gen)
    u = em.unpad(mask)
    flat = lambda t: t.flatten()[u.indices]                             # (B, L) -> (T,)
    chosen = torch.randperm(len(u.indices), generator=torch.Generator().manual_seed(0))[:200]   # (P,) of T
    rows, cols = u.indices[chosen] // mask.shape[1], u.indices[chosen] % mask.shape[1]
    grads = []
    for unpadded in (False, True):
        disc.zero_grad(), gen.zero_grad()
        if unpadded:
            hidden = em.encoder_forward_unpadded(disc.encoder, flat(ids), flat(types), u)
            logits = disc(flat(ids), flat(types), u)                    # the dispatch train_pretrain uses
            mlm = gen(flat(ids), flat(types), u, positions=chosen)
        else:
            hidden, logits = disc.encoder(ids, types, mask)[mask.bool()], disc(ids, types, mask)[mask.bool()]
            mlm = gen(ids, types, mask)[rows, cols]
        (logits.sum() + mlm.logsumexp(-1).sum()).backward()
        grads.append({n: p.grad.clone() for n, p in [*disc.named_parameters(), *gen.named_parameters()]})
        outputs = (hidden.detach(), logits.detach(), mlm.detach())
        if unpadded:
            for ours, padded in zip(outputs, reference):
                assert_close_to_scale(ours, padded)
        reference = outputs
    for name in grads[0]:
        assert_close_to_scale(grads[1][name], grads[0][name])


@torch.no_grad()
def test_varlen_attention_is_attention_within_each_sequence():
    """varlen_attention on (T, H, K) equals plain SDPA over each sequence alone (the definition), for a
    mask with holes anywhere, not only at the tail; on CUDA the varlen kernel equals the fallback."""
    g = torch.Generator().manual_seed(0)
    mask = torch.rand(4, 20, generator=g) < 0.7
    u = em.unpad(mask)
    q, k, v = (torch.randn(len(u.indices), 2, 8, generator=g) for _ in range(3))
    per_sequence = torch.cat([
        F.scaled_dot_product_attention(*(t[a:b].transpose(0, 1) for t in (q, k, v))).transpose(0, 1)
        for a, b in zip(u.cu_seqlens[:-1].tolist(), u.cu_seqlens[1:].tolist())])
    torch.testing.assert_close(em.varlen_attention(q, k, v, u), per_sequence, rtol=0, atol=1e-6)
    assert torch.equal(u.positions, mask.nonzero()[:, 1]) and u.max_len == mask.sum(-1).max()
    if torch.cuda.is_available() and em.varlen_attn is not None:
        cq, ck, cv = (t.cuda().half() for t in (q, k, v))
        cu = u.to("cuda")
        fallback = em.varlen_attention(cq, ck, cv, cu, dropout_p=1e-9)   # any dropout takes the fallback
        torch.testing.assert_close(em.varlen_attention(cq, ck, cv, cu), fallback, rtol=0, atol=2e-3)


def test_varlen_kernel_only_for_what_flash_attention_takes(monkeypatch):
    """varlen_attn is FlashAttention: CUDA, fp16/bf16, no dropout; everything else takes the SDPA
    fallback (a bf16 run's fp32 held-out scoring once crashed the kernel on the GPU)."""
    monkeypatch.setattr(em, "varlen_attn", object())
    cuda = lambda dtype: SimpleNamespace(is_cuda=True, dtype=dtype)
    assert em.can_use_varlen_kernel(cuda(torch.bfloat16), 0.0) and em.can_use_varlen_kernel(cuda(torch.float16), 0.0)
    assert not em.can_use_varlen_kernel(cuda(torch.float32), 0.0)
    assert not em.can_use_varlen_kernel(cuda(torch.bfloat16), 0.1)
    assert not em.can_use_varlen_kernel(torch.zeros(1, dtype=torch.bfloat16), 0.0)      # CPU
    monkeypatch.setattr(em, "varlen_attn", None)                                         # torch without it
    assert not em.can_use_varlen_kernel(cuda(torch.bfloat16), 0.0)


# ----- sharing: the same objects, moved once by one step -------------------------------------
def test_generator_shares_the_embedding_block():
    gen, disc = tiny_pair()
    shared, theirs = gen.encoder.embeddings, disc.encoder.embeddings
    assert shared is theirs
    for name in ("word_embeddings", "position_embeddings", "token_type_embeddings", "LayerNorm"):
        assert getattr(shared, name) is getattr(theirs, name), name
    # tiny: E = 32, generator H = 16, discriminator H = 64, so each network has its own projection E -> H
    gen_project, disc_project = gen.encoder.embeddings_project, disc.encoder.embeddings_project
    assert gen_project is not None and disc_project is not None and gen_project is not disc_project


def test_one_optimizer_step_moves_shared_weights_once():
    """SGD on the union of both networks: the shared matrix moves by exactly -lr * (sum of the
    gradients from the generator loss and the discriminator loss), not twice that."""
    gen, disc = tiny_pair()
    both = torch.nn.ModuleDict({"generator": gen, "discriminator": disc}).train()
    ids, types, mask = batches(100)[0]
    shared = disc.encoder.embeddings.word_embeddings.weight
    torch.manual_seed(1)
    loss = gen(ids, types, mask).logsumexp(-1).mean() + disc(ids, types, mask).square().mean()
    (grad,) = torch.autograd.grad(loss, shared)
    assert sum(p is shared for p in both.parameters()) == 1
    before = shared.detach().clone()
    torch.manual_seed(1)                                           # same dropout masks as above
    loss = gen(ids, types, mask).logsumexp(-1).mean() + disc(ids, types, mask).square().mean()
    loss.backward()
    torch.optim.SGD(both.parameters(), lr=0.5).step()
    torch.testing.assert_close(shared.detach() - before, -0.5 * grad, rtol=1e-4, atol=1e-7)


# ----- bad input: a CheckpointError that says what did not match -----------------------------
def saved_hf_discriminator(tmp_path, vocab_size=100):
    hf = ElectraForPreTraining(ElectraConfig(**asdict(em.model_config("tiny", vocab_size))))
    hf.save_pretrained(tmp_path)
    return {k: v.clone() for k, v in hf.state_dict().items()}


def rewrite(tmp_path, state=None, **config_changes):
    if state is not None:
        (tmp_path / "model.safetensors").unlink(missing_ok=True)
        torch.save(state, tmp_path / "pytorch_model.bin")
    config = json.loads((tmp_path / "config.json").read_text())
    config.update(config_changes)
    (tmp_path / "config.json").write_text(json.dumps(config))


def test_missing_and_unexpected_keys_are_listed(tmp_path):
    state = saved_hf_discriminator(tmp_path)
    del state["electra.encoder.layer.1.attention.self.key.bias"]
    del state["discriminator_predictions.dense.weight"]
    state["electra.encoder.layer.2.output.dense.weight"] = torch.zeros(64, 256)
    rewrite(tmp_path, state)
    with pytest.raises(em.CheckpointError) as err:
        em.load_hf_checkpoint(tmp_path)
    lines = str(err.value).splitlines()
    assert lines[1:] == ["  missing: electra.encoder.layer.1.attention.self.key.bias, "
                         "discriminator_predictions.dense.weight",
                         "  unexpected: electra.encoder.layer.2.output.dense.weight"], lines


def test_wrong_shapes_are_listed(tmp_path):
    saved_hf_discriminator(tmp_path, vocab_size=100)
    rewrite(tmp_path, vocab_size=120)                          # config and weights disagree
    with pytest.raises(em.CheckpointError, match=r"electra.embeddings.word_embeddings.weight: "
                                                 r"\(100, 32\) in the checkpoint, \(120, 32\) expected"):
        em.load_hf_checkpoint(tmp_path)


@pytest.mark.parametrize("change,expected", [
    (dict(model_type="bert"), "model_type is 'bert'"),
    (dict(hidden_act="gelu_new"), "hidden_act is 'gelu_new'"),
    (dict(position_embedding_type="relative_key"), "position_embedding_type is 'relative_key'"),
    (dict(is_decoder=True), "is_decoder is True"),
])
def test_unknown_config_is_refused(tmp_path, change, expected):
    saved_hf_discriminator(tmp_path)
    rewrite(tmp_path, **change)
    with pytest.raises(em.CheckpointError, match=expected):
        em.load_hf_checkpoint(tmp_path)
    with pytest.raises(em.CheckpointError, match=expected):
        em.load_hf_encoder(tmp_path)


def test_missing_config_keys_and_headless_checkpoints_are_refused(tmp_path):
    saved_hf_discriminator(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["hidden_size"], config["embedding_size"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(em.CheckpointError, match="embedding_size is missing") as err:
        em.load_hf_checkpoint(tmp_path)
    assert "hidden_size is missing" in str(err.value)
    ElectraModel(ElectraConfig(**asdict(em.model_config("tiny", 100)))).save_pretrained(tmp_path / "body")
    with pytest.raises(em.CheckpointError, match="use load_hf_encoder"):
        em.load_hf_checkpoint(tmp_path / "body")
    (tmp_path / "empty").mkdir()
    with pytest.raises(em.CheckpointError, match="no model.safetensors or pytorch_model.bin"):
        em.read_state_dict(tmp_path / "empty")


def test_older_checkpoint_extras_are_accepted_and_checked(tmp_path):
    """transformers 4.x saved the position_ids buffer and a copy of the tied MLM matrix."""
    hf = ElectraForMaskedLM(ElectraConfig(**asdict(shaped_config("tiny", "generator", 100))))
    hf.save_pretrained(tmp_path)
    state = {k: v.clone() for k, v in hf.state_dict().items()}
    state["electra.embeddings.position_ids"] = torch.arange(512)[None]
    assert "generator_lm_head.weight" in state                  # the tied copy, as older files hold it
    rewrite(tmp_path, state)
    gen = em.load_hf_checkpoint(tmp_path)
    assert torch.equal(gen.encoder.embeddings.word_embeddings.weight, state["generator_lm_head.weight"])
    state["generator_lm_head.weight"] = state["generator_lm_head.weight"] + 1.0
    rewrite(tmp_path, state)
    with pytest.raises(em.CheckpointError, match="generator_lm_head.weight differs from the word embeddings"):
        em.load_hf_checkpoint(tmp_path)


def test_unreadable_files_name_the_file(tmp_path):
    saved_hf_discriminator(tmp_path)
    (tmp_path / "model.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(em.CheckpointError, match="model.safetensors: not a safetensors file"):
        em.load_hf_checkpoint(tmp_path)
    (tmp_path / "model.safetensors").unlink()
    (tmp_path / "pytorch_model.bin").write_bytes(b"garbage")
    with pytest.raises(em.CheckpointError, match="pytorch_model.bin: cannot read as a PyTorch state dict"):
        em.load_hf_checkpoint(tmp_path)
    (tmp_path / "config.json").write_text("{")
    with pytest.raises(em.CheckpointError, match="config.json: not valid JSON"):
        em.load_hf_checkpoint(tmp_path)
