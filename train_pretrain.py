"""
Pre-training ELECTRAMed by replaced-token detection (docs/paper.md §3; ELECTRA, Clark et al. 2020).

A small generator fills in masked tokens; the discriminator learns to tell, for every token, whether
it is the original or a generator sample. Both are trained together with one loss, mlm + 50 * rtd,
and only the discriminator is kept for fine-tuning. `--objective mlm` trains BERT's masked-LM
instead: the baseline ELECTRA is compared with at equal compute (docs/paper.md §7).

    python train_pretrain.py --size tiny                # CPU, minutes (bench/results_pretrain.md §4)
    python train_pretrain.py --size base --corpus data/pubmed/corpus.txt --gpus 8                # the paper's run
    torchrun --nnodes 2 --nproc-per-node 8 --rdzv-endpoint HOST:29500 train_pretrain.py --size base ...

Writes to --out-dir: args.json (with the git commit and the FLOPs per step), log.jsonl, shards/ (the packed
corpus), checkpoints/step_XXXXXXX.pt, and final/discriminator/ and final/generator/ (final/mlm/) in the Hugging
Face layout. References: google-research/electra run_pretraining.py, pretrain/pretrain_helpers.py,
model/optimization.py, configure_pretraining.py.
"""
import argparse
import contextlib
import hashlib
import json
import math
import os
import random
import signal
import socket
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as torch_dist
import torch.multiprocessing as mp
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel as DDP
from tqdm import tqdm

import electramed as em
from data import DataError, PretrainingData, default_data_dir, git_state, note_if_sample, prepare_corpus
from tokenizer import Tokenizer, TokenizerError, train_vocab_file

# Shapes in comments: B batch (per process), L sequence length, N masked slots per example, V vocabulary size.


class PretrainError(ValueError):
    """A bad command line or a checkpoint that does not fit this run."""


# ---------------------------------------------------------------------------------------------
# 1. Masking                                                          (docs/paper.md §3; ELECTRA)
#    Pick max(1, min(N, round(p * real tokens))) positions, never [CLS]/[SEP]/pad, where real
#    tokens count [CLS]/[SEP] (ELECTRA sums input_mask). 85% of them become [MASK]; the other 15%
#    keep their token. No random-token replacement. N slots per example, weights mark the used ones.
#    The uniforms come from draw_noise (Appendix A.1): a hash of (seed, step, example, position).
# ---------------------------------------------------------------------------------------------
def num_predictions(mask_prob: float, seq_len: int) -> int:
    """N, the fixed number of masked slots per example (configure_pretraining.py)."""
    return int((mask_prob + 0.005) * seq_len)


def count_targets(input_ids, special_ids, pad_id, mask_prob, n):
    """Masked positions per example: (B,) long. input_ids: (B, L)."""
    real = (input_ids != pad_id).sum(-1)
    wanted = torch.round(real.float() * mask_prob).long().clamp(1, n)   # float32 and half-to-even, as tf.round
    candidates = masking_candidates(input_ids, special_ids, pad_id).sum(-1)
    return torch.minimum(wanted, candidates)      # CHOICE: never more than the candidates (tiny examples only)


def masking_candidates(input_ids, special_ids, pad_id):
    """(B, L) bool: positions that may be masked (pretrain_helpers._get_candidates_mask)."""
    allowed = input_ids != pad_id
    for i in special_ids:
        allowed &= input_ids != i
    return allowed


def mask_tokens(input_ids, counts, position_noise, keep_noise, special_ids, pad_id, mask_id, mask_share=0.85):
    """Returns masked ids (B, L), positions (B, N), weights (B, N) bool, original ids (B, N).
    position_noise: (B, L) and keep_noise: (B, N) uniform in [0, 1); counts: (B,) from count_targets."""
    n = keep_noise.shape[1]
    candidates = masking_candidates(input_ids, special_ids, pad_id)
    # CHOICE: positions are drawn without replacement (top-k of uniform noise), BERT's way; ELECTRA's
    # tf.random.categorical draws with replacement, so a duplicate there masks fewer distinct tokens.
    scores = torch.where(candidates, position_noise, -1.0)
    positions = scores.topk(n, dim=-1).indices                            # (B, N), candidates first
    weights = torch.arange(n, device=counts.device) < counts[:, None]     # (B, N)
    positions = positions * weights                                       # unused slots -> 0 ([CLS])
    originals = input_ids.gather(1, positions)                            # (B, N)
    to_mask = weights & (keep_noise < mask_share)                         # 85% [MASK], 15% kept
    masked = input_ids.scatter(1, positions, torch.where(to_mask, mask_id, originals))
    return masked, positions, weights, originals


# ---------------------------------------------------------------------------------------------
# 2. Sampling replacements                                            (docs/paper.md §3; ELECTRA)
#    One categorical sample per masked slot from the generator's softmax at temperature 1 (fp32 logits, no
#    gradient), written into the ORIGINAL ids. Label = sample != original: a correct guess counts as original.
# CHOICE: inverse-CDF sampling (one uniform per slot, searched in the cumulative softmax) instead of
# ELECTRA's Gumbel-max (one uniform per slot and vocabulary entry): the same distribution at less than
# half the CPU cost of the noise and sampling (bench/results_pretrain.md §3).
# ---------------------------------------------------------------------------------------------
def sample_replacements(logits, uniform):
    """logits (B, N, V), uniform (B, N) in [0, 1) -> (B, N) ids: the first token whose cumulative probability
    exceeds the uniform, summed exactly (Appendix A.2). The distribution of ELECTRA's sample_from_softmax."""
    with torch.no_grad(), torch.autocast(logits.device.type, enabled=False):
        return inverse_cdf_sample(logits.float(), uniform)


def replace_tokens(input_ids, positions, weights, sampled):
    """Returns the corrupted ids (B, L) and the discriminator labels (B, L) bool (True = replaced)."""
    originals = input_ids.gather(1, positions)
    corrupted = input_ids.scatter(1, positions, torch.where(weights, sampled, originals))
    return corrupted, corrupted != input_ids           # a correct guess counts as original (ELECTRA)


# ---------------------------------------------------------------------------------------------
# 3. Losses                                                           (docs/paper.md §3; ELECTRA)
#    MLM: cross-entropy at the masked slots; RTD: sigmoid BCE over every non-pad token (incl.
#    [CLS]/[SEP]). Both in fp32, as token means over the WHOLE global batch: the loop passes the
#    global counts as denominators. loss = mlm + 50 * rtd. Metrics under no_grad.
# CHOICE: token means over the global batch, so the update does not depend on the process split;
# ELECTRA's TPU run averaged per-core means (equal when every core holds as many tokens).
# ---------------------------------------------------------------------------------------------
DISC_WEIGHT = 50.0                 # lambda in loss = mlm + lambda * rtd (ELECTRA)
STATS = ("mlm_sum", "rtd_sum", "masked", "real", "gen_correct", "disc_correct", "true_pos",
         "pred_pos", "replaced", "attended")      # attended: sum of squared real lengths (attention's work)


class ReplacedTokenDetection(nn.Module):
    """The generator and discriminator with shared embeddings, trained as one module."""

    disc_weight = DISC_WEIGHT

    def __init__(self, generator, discriminator, special_ids, pad_id, mask_id):
        super().__init__()
        em.tie_generator_to(generator, discriminator)
        self.generator, self.discriminator = generator, discriminator
        self.special_ids, self.pad_id, self.mask_id = tuple(special_ids), pad_id, mask_id

    def forward(self, batch):
        """batch: from prepare_batch, with mlm_denominator and rtd_denominator (0-dim tensors). Returns
        {"loss": for backward, "stats": (len(STATS),) sums, "disc_logits", "labels", "real"}. mlm_logits,
        at_slots and discriminator_logits run the networks padded, or with --unpad unpadded (Appendix A.3)."""
        ids, types, attn = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
        masked, positions, weights, originals = mask_tokens(
            ids, batch["counts"], batch["position_noise"], batch["keep_noise"],
            self.special_ids, self.pad_id, self.mask_id)
        gen_logits = mlm_logits(self.generator, masked, types, attn, positions, batch)       # (B*N, V)
        sampled = sample_replacements(gen_logits, at_slots(batch["sample_noise"], batch))   # (B*N,)
        if batch.get("used_slots") is not None:         # --unpad: unused slots keep their token (weight 0)
            sampled = originals.flatten().index_copy(0, batch["used_slots"], sampled)
        corrupted, labels = replace_tokens(ids, positions, weights, sampled.view_as(originals))  # (B, L) x 2
        disc_logits = discriminator_logits(self.discriminator, corrupted, types, attn, batch)  # (B, L)
        real = ids != self.pad_id
        nll = F.cross_entropy(gen_logits, at_slots(originals, batch), reduction="none")
        mlm_sum = (nll * at_slots(weights, batch)).sum()
        bce = F.binary_cross_entropy_with_logits(disc_logits, labels.float(), reduction="none")
        rtd_sum = (bce * real).sum()
        loss = mlm_sum / batch["mlm_denominator"] + self.disc_weight * rtd_sum / batch["rtd_denominator"]
        with torch.no_grad():
            gen_correct = ((gen_logits.argmax(-1) == at_slots(originals, batch)) & at_slots(weights, batch)).sum()
            predicted = (disc_logits > 0) & real
            stats = torch.stack([x.float() for x in (
                mlm_sum, rtd_sum, weights.sum(), real.sum(), gen_correct, ((predicted == labels) & real).sum(),
                (predicted & labels).sum(), predicted.sum(), labels.sum(), real.sum(-1).float().square().sum())])
        return {"loss": loss, "stats": stats, "disc_logits": disc_logits.detach(), "labels": labels, "real": real}

    def networks(self) -> dict:
        """The networks a run exports, by directory name; the first is the one kept for fine-tuning."""
        return {"discriminator": self.discriminator, "generator": self.generator}


# ---------------------------------------------------------------------------------------------
# 4. The masked-LM baseline (--objective mlm, off by default)   (docs/paper.md §7; BERT; ELECTRA)
#    What ELECTRA compares itself with at equal compute: BERT's masked-LM alone on the discriminator-sized
#    encoder, no generator, no discriminator. Section 1's counts and positions with p = 0.15; of those 80%
#    become [MASK], 10% a random token drawn uniformly from the whole vocabulary (BERT's
#    create_pretraining_data.py, HF's DataCollatorForLanguageModeling), 10% stay. Loss: fp32 cross-entropy.
# ---------------------------------------------------------------------------------------------
BERT_MASK_PROB, BERT_MASK_SHARE, BERT_RANDOM_SHARE = 0.15, 0.8, 0.1     # the rest, 10%, keep their token


def mask_tokens_bert(input_ids, counts, position_noise, keep_noise, random_noise, special_ids, pad_id, mask_id,
                     vocab_size):
    """BERT's masking: mask_tokens with 80% [MASK], then 10% of the chosen positions get a random token
    drawn by random_noise: (B, N) uniform in [0, 1). Returns what mask_tokens returns."""
    masked, positions, weights, originals = mask_tokens(input_ids, counts, position_noise, keep_noise, special_ids,
                                                        pad_id, mask_id, mask_share=BERT_MASK_SHARE)
    to_random = weights & (keep_noise >= BERT_MASK_SHARE) & (keep_noise < BERT_MASK_SHARE + BERT_RANDOM_SHARE)
    random_ids = (random_noise * vocab_size).long()                       # (B, N), uniform over [0, V)
    masked = masked.scatter(1, positions, torch.where(to_random, random_ids, masked.gather(1, positions)))
    return masked, positions, weights, originals


class MaskedLanguageModel(nn.Module):
    """BERT's masked-LM: an em.Generator (encoder + MLM head, tied embeddings) of the discriminator's size."""
    disc_weight = None                                  # no discriminator: summarize() logs the MLM only

    def __init__(self, masked_lm: em.Generator, special_ids, pad_id, mask_id):
        super().__init__()
        self.masked_lm = masked_lm
        self.special_ids, self.pad_id, self.mask_id = tuple(special_ids), pad_id, mask_id

    def forward(self, batch):
        """batch as ReplacedTokenDetection.forward's (sample_noise draws the random tokens; rtd_denominator
        is unused). Returns {"loss": mean cross-entropy at the masked positions, "stats": STATS sums}."""
        ids, types, attn = batch["input_ids"], batch["token_type_ids"], batch["attention_mask"]
        masked, positions, weights, originals = mask_tokens_bert(
            ids, batch["counts"], batch["position_noise"], batch["keep_noise"], batch["sample_noise"],
            self.special_ids, self.pad_id, self.mask_id, self.masked_lm.config.vocab_size)
        logits = mlm_logits(self.masked_lm, masked, types, attn, positions, batch)          # (B*N, V)
        nll = F.cross_entropy(logits, at_slots(originals, batch), reduction="none")
        mlm_sum = (nll * at_slots(weights, batch)).sum()
        with torch.no_grad():
            real, zero = ids != self.pad_id, mlm_sum.new_zeros(())
            correct = ((logits.argmax(-1) == at_slots(originals, batch)) & at_slots(weights, batch)).sum()
            stats = torch.stack([x.float() for x in (mlm_sum, zero, weights.sum(), real.sum(), correct, zero, zero,
                                                     zero, zero, real.sum(-1).float().square().sum())])
        return {"loss": mlm_sum / batch["mlm_denominator"], "stats": stats}

    def networks(self) -> dict:
        return {"mlm": self.masked_lm}


# ---------------------------------------------------------------------------------------------
# 5. Optimizer and schedule                                    (docs/paper.md §3; optimization.py)
#    Adam with decoupled weight decay 0.01 (not on LayerNorm weights or biases: every 1-d tensor),
#    betas 0.9/0.999, eps 1e-6, NO bias correction in the original; clip the global norm at 1.0.
#    lr(step) = peak * (1 - step/total) * min(1, step/warmup), step = updates done so far, so the
#    first update has lr 0, exactly as polynomial_decay(power=1) * warmup on the global step.
# ---------------------------------------------------------------------------------------------
WEIGHT_DECAY, CLIP_NORM = 0.01, 1.0


class AdamWeightDecay(torch.optim.Optimizer):
    """ELECTRA's AdamWeightDecayOptimizer: p -= lr * (m / (sqrt(v) + eps) + wd * p).
    bias_correction=True gives torch.optim.AdamW's update (m and v divided by 1 - beta^t). Written with
    torch._foreach_* ops (a few multi-tensor kernels per group on CUDA), in the per-tensor loop's order."""

    def __init__(self, params, lr, betas=(0.9, 0.999), eps=1e-6, weight_decay=0.0, bias_correction=False):
        super().__init__(params, dict(lr=lr, betas=betas, eps=eps, weight_decay=weight_decay,
                                      bias_correction=bias_correction))

    @torch.no_grad()
    def step(self):
        for group in self.param_groups:
            (b1, b2), lr, wd = group["betas"], group["lr"], group["weight_decay"]
            params = [p for p in group["params"] if p.grad is not None]
            if not params:
                continue
            states = [self.state[p] for p in params]
            for p, state in zip(params, states):
                if not state:
                    state.update(step=0, m=torch.zeros_like(p), v=torch.zeros_like(p))
                state["step"] += 1                                    # a Python int: no device read
            grads, ms, vs = [p.grad for p in params], [s["m"] for s in states], [s["v"] for s in states]
            torch._foreach_lerp_(ms, grads, 1 - b1)                   # m = b1 m + (1 - b1) g
            torch._foreach_mul_(vs, b2)
            torch._foreach_addcmul_(vs, grads, grads, value=1 - b2)   # v = b2 v + (1 - b2) g^2
            denominators = torch._foreach_sqrt(vs)
            if group["bias_correction"]:                              # per tensor: steps may differ
                torch._foreach_div_(denominators, [math.sqrt(1 - b2 ** s["step"]) for s in states])
            torch._foreach_add_(denominators, group["eps"])
            if wd:
                torch._foreach_mul_(params, 1 - lr * wd)              # decoupled decay, from the old p
            c1 = [1 - b1 ** s["step"] if group["bias_correction"] else 1.0 for s in states]
            torch._foreach_addcdiv_(params, ms, denominators, [-lr / c for c in c1])


# CHOICE: Adam bias correction on when the warmup is shorter than BIAS_CORRECTION_WARMUP steps (ELECTRA has
# none): without it the first updates are 1/sqrt(1 - 0.999^t) too large, x3.2 at step 100 but x1.003 at
# 5,000, so a short CPU warmup would peak at several times its --lr (bench/results_pretrain.md §4).
BIAS_CORRECTION_WARMUP = 5_000


def build_optimizer(model, args):
    """Weight decay on matrices only: every 1-d tensor is a LayerNorm weight or a bias, the names ELECTRA excludes."""
    params = list(model.parameters())                     # a shared tensor appears once
    groups = [{"params": [p for p in params if p.ndim >= 2], "weight_decay": WEIGHT_DECAY},
              {"params": [p for p in params if p.ndim < 2], "weight_decay": 0.0}]
    return AdamWeightDecay(groups, lr=0.0, bias_correction=args.bias_correction)


def learning_rate(step, peak, total, warmup) -> float:
    """ELECTRA's schedule: linear decay to 0 at `total` times linear warmup over `warmup` steps."""
    return peak * max(0.0, 1 - step / total) * (min(1.0, step / warmup) if warmup else 1.0)


# ---------------------------------------------------------------------------------------------
# 6. Checkpoints                                 (google-research/electra run_pretraining.py; ours)
#    checkpoints/step_XXXXXXX.pt: model (raw module, no prefixes), optimizer, step, args, ModelConfigs,
#    vocab fingerprint, data position and every process's RNG states, so a resumed run is bit-identical.
# ---------------------------------------------------------------------------------------------
def checkpoint_now(args, dist, raw, optimizer, data_position, step):
    """Gather every process's RNG state, then the main process writes the checkpoint."""
    rngs = gather_rng_states(dist)                              # Appendix A.8
    if dist.is_main:
        networks = list(raw.networks().values())
        state = {"model": raw.state_dict(), "optimizer": optimizer.state_dict(), "step": step,
                 "args": vars(args), "model_config": asdict(networks[0].config),
                 "vocab": vocab_fingerprint(args.vocab), "data": data_position, "rng": rngs}
        if len(networks) > 1:
            state["generator_config"] = asdict(networks[1].config)
        save_checkpoint(args.out_dir, step, state, args.keep_checkpoints)


def resume(args, dist, raw, optimizer, data) -> int:
    """With --resume, restore the latest checkpoint (model, optimizer, data, this process's RNGs): its step, or 0."""
    checkpoint = latest_checkpoint(args.out_dir) if args.resume else None
    if checkpoint is None:
        return 0
    state = load_checkpoint(checkpoint, args, raw)              # Appendix A.8: refuses one that does not fit
    raw.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    data.load_state_dict(state["data"])
    set_rng_state(state["rng"][dist.rank], dist.device)
    print0(dist, f"=> resumed from {checkpoint} at step {state['step']}")
    return state["step"]


# ---------------------------------------------------------------------------------------------
# 7. The training loop                                 (docs/paper.md §3; ELECTRA run_pretraining.py)
#    seeds -> data -> model, optimizer -> resume -> DDP, compile -> loop -> final export.
# ---------------------------------------------------------------------------------------------
def build_model(args, tokenizer, objective="rtd"):
    """ReplacedTokenDetection, or MaskedLanguageModel for objective "mlm"."""
    config = em.model_config(args.size, len(tokenizer), max_position_embeddings=max(512, args.seq_len),
                             hidden_dropout_prob=args.dropout, attention_probs_dropout_prob=args.dropout,
                             pad_token_id=tokenizer.pad_id)
    specials = (tokenizer.cls_id, tokenizer.sep_id, tokenizer.mask_id)
    if objective == "mlm":
        return MaskedLanguageModel(em.Generator(config), specials, tokenizer.pad_id, tokenizer.mask_id)
    generator = em.Generator(em.generator_config(config, args.generator_fraction))        # built first: RNG order
    return ReplacedTokenDetection(generator, em.Discriminator(config), specials, tokenizer.pad_id, tokenizer.mask_id)


def prepare_batch(batch, args, step, first_index, device):
    """Move a data batch (with its "counts") to the device, padding decided on the host first; draw its noise."""
    padded = has_padding(batch["attention_mask"])
    layout = unpadded_layout(batch, args, device) if padded and args.unpad else None        # Appendix A.3
    batch = {k: to_device(v, device) for k, v in batch.items()}
    if not padded:
        batch["attention_mask"] = None          # no padding: SDPA may use the flash kernel (docs/paper.md §5)
    if layout is not None:
        batch["unpadded"], batch["used_slots"] = layout       # the encoders see the real tokens only
    seeds = example_seeds(args.seed, step, range(first_index, first_index + len(batch["input_ids"])))
    batch["position_noise"], batch["keep_noise"], batch["sample_noise"] = draw_noise(
        seeds, args.seq_len, args.num_predictions, device)
    return batch


def train(args, dist):
    # 1-2. processes, device and seeds (model init identical everywhere; dropout differs by rank)
    setup_torch(args, dist)
    out_dir = Path(args.out_dir)
    # 3. data
    data, heldout = open_data(args, dist, out_dir)
    # 4. model, optimizer; args.json with the FLOPs of a step (Appendix A.4-A.5)
    raw = build_model(args, Tokenizer.from_vocab_file(args.vocab), args.objective).to(dist.device)
    optimizer = build_optimizer(raw, args)
    record_run(args, dist, raw)
    torch.manual_seed(args.seed + dist.rank)
    # 5. resume
    step = resume(args, dist, raw, optimizer, data)
    # 6. DDP, then compile; `raw` stays the module we save
    model = wrap_model(raw, args, dist)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if args.precision == "bf16" else contextlib.nullcontext()
    # 7. loop: lr -> micro-steps under autocast -> clip -> step -> log -> checkpoint
    stop, log = StopRequest(), TrainingLog(args, dist, raw, heldout, autocast, step)
    bad_step = torch.tensor(NO_BAD_STEP, device=dist.device)        # the deferred NaN check (Appendix A.6)
    try:
        while step < args.steps:
            position = data.state_dict()            # where a checkpoint taken before this step resumes
            batches = [data.next_batch() for _ in range(args.grad_accum)]
            masked, real, stopping = global_counts(batches, raw, args, dist, stop.requested)
            if stopping:                             # every process stops at the same step
                break
            lr = learning_rate(step, args.lr, args.steps, args.warmup_steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            denominators = {"mlm_denominator": to_device(torch.tensor(masked / dist.world_size), dist.device),
                            "rtd_denominator": to_device(torch.tensor(real / dist.world_size), dist.device)}
            step_loss = torch.zeros((), device=dist.device)
            for micro, b in enumerate(batches):
                first = (micro * dist.world_size + dist.rank) * args.micro_batch_size   # index in the global batch
                batch = {**prepare_batch(b, args, step, first, dist.device), **denominators}
                sync = dist.world_size == 1 or micro == len(batches) - 1     # all-reduce on the last only
                with contextlib.nullcontext() if sync else model.no_sync():
                    with autocast:
                        out = model(batch)
                    out["loss"].backward()     # gradients summed over micro-batches, averaged by DDP
                log.add(out)
                step_loss += out["loss"].detach()
            grad_norm = torch.nn.utils.clip_grad_norm_(raw.parameters(), CLIP_NORM)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            bad_step = first_bad_step(bad_step, step, step_loss, grad_norm)     # on the device: no read
            if step % args.log_every == 0 or step % args.save_every == 0 or step == args.steps:
                raise_if_not_finite(bad_step, dist, step)      # the NaN check's only reads: log and save steps
            log.after_step(step, lr, grad_norm)
            if step % args.save_every == 0 or step == args.steps:
                checkpoint_now(args, dist, raw, optimizer, data.state_dict(), step)
        if step < args.steps:
            raise_if_not_finite(bad_step, dist, step)
            checkpoint_now(args, dist, raw, optimizer, position, step)
            print0(dist, f"=> stopped at step {step} on request; resume with --resume")
    finally:
        stop.restore()
        log.close()
    # 8. final export in the Hugging Face layout
    if step >= args.steps and dist.is_main:
        for name, network in raw.networks().items():
            em.save_hf_checkpoint(network, out_dir / "final" / name, vocab_file=args.vocab)
        print0(dist, f"=> exported {', '.join(str(out_dir / 'final' / name) for name in raw.networks())}")
    return raw


# ---------------------------------------------------------------------------------------------
# 8. Arguments and presets                        (docs/paper.md §2-§3; ELECTRA Table 6 and
#    configure_pretraining.py). Model shapes are electramed.SIZES and GENERATOR_FRACTION; here is the
#    recipe per size. None in an option means "from --size". "tiny" and "mini" are ours, for CPUs.
# CHOICE: tiny: short examples in big batches, a higher mask rate and a vocabulary learned from the corpus
#   first, so that a CPU sees learning in minutes: the cost is the vocabulary work per masked slot, and with
#   scivocab the embedded sample was only memorised (bench/results_pretrain.md §3-§4).
# CHOICE: mini: the CPU proof on scivocab, ~100 min on 2 cores; an 8k vocabulary, a higher lr and ELECTRA's
#   mask rate were measured and rejected (bench/results_pretrain.md §4).
# ---------------------------------------------------------------------------------------------
PRESETS = {
    "tiny":  dict(lr=3e-3, batch_size=128, seq_len=32, mask_prob=0.25, dropout=0.0, steps=3000, learn_vocab=4000),
    "mini":  dict(lr=1e-3, batch_size=32, seq_len=128, mask_prob=0.25, dropout=0.0, steps=6000, warmup_steps=300),
    "small": dict(lr=5e-4, batch_size=128, seq_len=128, mask_prob=0.15, dropout=0.1, steps=1_000_000),
    "base":  dict(lr=2e-4, batch_size=256, seq_len=512, mask_prob=0.15, dropout=0.1, steps=1_000_000),  # ELECTRAMed
    "large": dict(lr=2e-4, batch_size=2048, seq_len=512, mask_prob=0.25, dropout=0.1, steps=400_000),
}


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("the paper's recipe (docs/paper.md §1-§3); each default comes from --size")
    g.add_argument("--size", choices=PRESETS, default="small")
    g.add_argument("--data-dir", default=default_data_dir(),
                   help="default: $ELECTRAMED_DATA, else data/, else the embedded sample_data/")
    g.add_argument("--corpus", nargs="+", default=None, help="text files, one sentence a line, blank line "
                   "between documents (default: DATA_DIR/pubmed/corpus.txt)")
    g.add_argument("--vocab", default=None, help="default: DATA_DIR/vocab/scivocab_uncased.txt (tiny: 4,000 "
                   "pieces learned from the corpus into OUT_DIR/vocab.txt)")
    g.add_argument("--seq-len", type=int, default=None, help="tokens per example")
    g.add_argument("--mask-prob", type=float, help="masked share of the tokens (--objective mlm: BERT's 0.15)")
    g.add_argument("--dropout", type=float, default=None, help="hidden and attention dropout")
    g.add_argument("--steps", type=int, default=None, help="optimizer steps")
    g.add_argument("--batch-size", type=int, default=None, help="sequences per optimizer step, all processes")
    g.add_argument("--lr", type=float, default=None, help="peak learning rate")
    g.add_argument("--warmup-steps", type=int, default=None, help="default min(10000, steps // 10)")
    g = p.add_argument_group("variants (off the paper's recipe; where each is measured)")
    g.add_argument("--objective", choices=("rtd", "mlm"), default="rtd",
                   help="rtd: ELECTRA's replaced-token detection; mlm: BERT's masked-LM on the discriminator-"
                        "sized encoder, ELECTRA's baseline (§4 here; compared at equal FLOPs in RESULTS.md)")
    g.add_argument("--bias-correction", action=argparse.BooleanOptionalAction, default=None,
                   help=f"Adam bias correction, which ELECTRA lacks (default: on for warmups under "
                        f"{BIAS_CORRECTION_WARMUP:,} steps; bench/results_pretrain.md §4)")
    g.add_argument("--unpad", action=argparse.BooleanOptionalAction, default=False, help="the encoders on the "
                   "real tokens only: same results, no padding FLOPs (Appendix A.3; bench/results_pretrain.md §2d)")
    g = p.add_argument_group("processes and devices")
    g.add_argument("--gpus", type=int, default=None, help="GPU processes to start (default: 1 if CUDA, else 0)")
    g.add_argument("--nproc", type=int, default=1, help="CPU processes to start (gloo), when --gpus is 0")
    g.add_argument("--grad-accum", type=int, default=1, help="micro-batches per optimizer step")
    g.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                   help="torch.compile (default: on for CUDA; bench/results_pretrain.md §2)")
    g.add_argument("--data-workers", type=int, default=2, help="tokenizer processes for corpus preparation")
    g = p.add_argument_group("the run")
    g.add_argument("--out-dir", default="runs/pretrain")
    g.add_argument("--seed", type=int, default=0)
    g.add_argument("--log-every", type=int, default=10)
    g.add_argument("--heldout-every", type=int, default=100,
                   help="hold out documents 0, k, 2k, ... of the corpus (never trained on); 0: none")
    g.add_argument("--eval-every", type=int, default=None, help="score the held-out slice every this many "
                   "steps (default: 100 for runs up to 20,000 steps, else 1,000; never rarer than --save-every)")
    g.add_argument("--save-every", type=int, default=1000, help="checkpoint every this many steps")
    g.add_argument("--keep-checkpoints", type=int, default=3)
    g.add_argument("--resume", action=argparse.BooleanOptionalAction, default=False,
                   help="continue from the latest checkpoint in OUT_DIR/checkpoints")
    g.add_argument("--export", metavar="CHECKPOINT", default=None, help="only export CHECKPOINT (a "
                   "checkpoints/step_*.pt) in the Hugging Face layout, next to it in step_*/, and exit")
    return p.parse_args(argv)


def resolve_defaults(args):
    """Fill every None from --size, check the combination, and print what the run will do."""
    args.learn_vocab = 0 if args.vocab else PRESETS[args.size].get("learn_vocab", 0)   # a named --vocab wins
    if args.objective == "mlm" and args.mask_prob is None:
        args.mask_prob = BERT_MASK_PROB       # the presets' mask_prob is the RTD recipe
    for name, value in PRESETS[args.size].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    args.generator_fraction = em.GENERATOR_FRACTION[args.size]
    args.corpus = args.corpus or [os.path.join(args.data_dir, "pubmed", "corpus.txt")]
    if args.learn_vocab:
        args.vocab = os.path.join(args.out_dir, "vocab.txt")            # learned by main
    args.vocab = args.vocab or os.path.join(args.data_dir, "vocab", "scivocab_uncased.txt")
    note_if_sample(*args.corpus, args.vocab)
    if args.warmup_steps is None:         # CHOICE: min(10k, 10% of the steps), so short runs warm up too
        args.warmup_steps = min(10_000, args.steps // 10)
    if args.bias_correction is None:
        args.bias_correction = args.warmup_steps < BIAS_CORRECTION_WARMUP
    args.eval_every = args.eval_every or min(args.save_every, 1000 if args.steps > 20_000 else 100)
    check_processes(args)                                                # Appendix A.7
    args.precision = "bf16" if args.gpus else "fp32"                     # bf16 autocast on CUDA, as ELECTRA's TPUs
    args.compile = bool(args.gpus) if args.compile is None else args.compile
    args.num_predictions = num_predictions(args.mask_prob, args.seq_len)
    print_plan(args)                                                     # Appendix A.5
    return args


# ---------------------------------------------------------------------------------------------
# 9. Entry point
# ---------------------------------------------------------------------------------------------
def main(args):
    if args.export:
        return export_checkpoint(args.export, Path(args.export).with_suffix(""))      # Appendix A.8
    args = resolve_defaults(args)
    if args.learn_vocab:     # learn a WordPiece vocabulary first (docs/paper.md §6); deterministic
        print(f"=> learning a {args.learn_vocab:,}-piece vocabulary from {', '.join(args.corpus)} -> {args.vocab}")
        train_vocab_file(args.corpus, args.learn_vocab, args.vocab, workers=args.data_workers)
    return start_processes(args)          # Appendix A.7: train() here, in N spawned processes, or under torchrun


# =============================================================================================
# Appendix: noise, sampler, unpadding, FLOPs, logs, NaN check, processes. A student can skip it: same results.
# =============================================================================================

# A.1 Counter-based noise. The counter XOR a key word, then MurmurHash3's 32-bit finalizer, three times
#     (three key words from (seed, step) by numpy's SeedSequence). Each round is a bijection of 32-bit
#     words, so distinct counters of a step never collide; a micro-batch is one vectorised expression.
# CHOICE: counter-based noise, not a random stream: masks and samples do not depend on the process split,
# and a resumed run redraws them exactly (ELECTRA's TF run draws one stream per core).
MASK32 = 0xFFFF_FFFF


def example_seeds(seed, step, indices: range):
    """draw_noise's input: three 32-bit key words of (run seed, step), and the examples' indices in the global batch."""
    keys = [int(k) for k in np.random.SeedSequence([seed, step]).generate_state(3, np.uint32)]
    return keys, indices


def multiply32(x, c: int):
    """x * c mod 2^32 for int64 x in [0, 2^32): c in 16-bit halves, so no product passes 2^48
    (int64 overflow is not relied on, on any device)."""
    return (x * (c & 0xFFFF) + (((x * (c >> 16)) & 0xFFFF) << 16)) & MASK32


def mix32(x):
    """MurmurHash3's 32-bit finalizer (fmix32): a bijection of [0, 2^32) with full avalanche."""
    x = multiply32(x ^ (x >> 16), 0x85EBCA6B)
    x = multiply32(x ^ (x >> 13), 0xC2B2AE35)
    return x ^ (x >> 16)


def draw_noise(seeds, seq_len, n, device):
    """Uniform noise in [0, 1) for masking and sampling from example_seeds: position (B, L) and keep
    (B, N) float32 on a 2^-24 grid, sample (B, N) float64 on a 2^-53 grid (see A.2)."""
    keys, indices = seeds
    width = seq_len + 3 * n
    if indices.stop * width > MASK32:
        raise PretrainError(f"{indices.stop} examples x {width} noise values pass the 32-bit counter")
    rows = torch.arange(indices.start, indices.stop, device=device)
    x = rows[:, None] * width + torch.arange(width, device=device)         # (B, W) distinct counters
    for key in keys:
        x = mix32(x ^ key)
    words, high, low = x.split([seq_len + n, n, n], 1)
    out = (words >> 8).float() * 2.0 ** -24      # the top 24 bits: torch.rand's float32 grid on [0, 1)
    sample = ((high << 21) + (low >> 11)).double() * 2.0 ** -53   # 53 bits from two words, float64
    return out[:, :seq_len], out[:, seq_len:], sample


# A.2 The exact inverse CDF. A float32 cumulative sum over V gives a token below ~2^-24 of the running
#     total no interval at all. So the vocabulary is cut into blocks of SAMPLE_BLOCK: the block masses are
#     summed and accumulated in float64, one block is picked, and only its entries get a float64 cumulative
#     sum; each token's chance is then right to fp32's exp (~1e-7 relative) however small.
SAMPLE_BLOCK = 128


def inverse_cdf_sample(logits, uniform):
    """logits: (B, N, V) float32; uniform: (B, N) in [0, 1). Returns (B, N) token ids."""
    vocab = logits.shape[-1]
    tail = -vocab % SAMPLE_BLOCK                                                # zero-mass padding
    mass = F.pad(logits, (0, tail), value=-math.inf).sub_(logits.amax(-1, keepdim=True)).exp_()  # unnormalized
    blocks = mass.unflatten(-1, (-1, SAMPLE_BLOCK))                             # (B, N, K, S)
    # a block's fp32 sum is right to ~1e-7 of itself, whatever its size; the sum over blocks is float64
    block_cdf = blocks.sum(-1).double().cumsum_(-1)                             # (B, N, K)
    total = block_cdf[..., -1:]
    # u * total, kept below total: the first block whose cumulative mass exceeds it has some mass
    target = torch.minimum(uniform.double().unsqueeze(-1) * total, torch.nextafter(total, total.new_zeros(())))
    # (the clamps only matter for NaN logits, a diverged run: ids stay valid, the loop's check stops it)
    block = torch.searchsorted(block_cdf, target, right=True).clamp_(max=block_cdf.shape[-1] - 1)  # (B, N, 1)
    start = F.pad(block_cdf, (1, 0))[..., :-1].gather(-1, block)               # mass before the block
    fraction = (target - start) / (block_cdf.gather(-1, block) - start)        # where in the block, [0, 1)
    picked = blocks.gather(-2, block[..., None].expand(*block.shape, SAMPLE_BLOCK)).squeeze(-2)   # (B, N, S)
    inside = picked.double().cumsum_(-1)                                        # (B, N, S)
    # the same fraction of the block's own float64 total (which holds its tiny tokens); clamped below it
    rest = torch.minimum(fraction * inside[..., -1:], torch.nextafter(inside[..., -1:], inside.new_zeros(())))
    offset = torch.searchsorted(inside, rest, right=True)
    return (block * SAMPLE_BLOCK + offset).squeeze(-1).clamp_(max=vocab - 1)


# A.3 Unpadded batches (--unpad): the encoders see the real tokens only, as one (T, D) row (electramed.unpad),
#     the MLM head and the sampling the P masked tokens only, not N slots per example. Same results, fewer FLOPs.
def mlm_logits(network, masked, types, attn, positions, batch):
    """An MLM network's fp32 logits at the masked slots: (B*N, V), or with --unpad (P, V) at the used ones."""
    unpadded = batch.get("unpadded")
    if unpadded is None:
        return network(masked, types, attn, positions=positions).float().flatten(0, 1)
    B, L = masked.shape
    token = torch.zeros(B * L, dtype=torch.long, device=masked.device).index_copy_(
        0, unpadded.indices, torch.arange(len(unpadded.indices), device=masked.device))   # (B*L,) -> index in T
    rows = token[(positions + L * torch.arange(B, device=masked.device)[:, None]).flatten()[batch["used_slots"]]]
    return network(masked.flatten()[unpadded.indices], types.flatten()[unpadded.indices], unpadded,
                   positions=rows).float()                                              # (P, V)


def discriminator_logits(discriminator, corrupted, types, attn, batch):
    """The discriminator's fp32 logit per token, (B, L); with --unpad run on the real tokens (0 at padding)."""
    unpadded = batch.get("unpadded")
    if unpadded is None:
        return discriminator(corrupted, types, attn).float()
    real_logits = discriminator(corrupted.flatten()[unpadded.indices], types.flatten()[unpadded.indices],
                                unpadded).float()                                    # (T,)
    return real_logits.new_zeros(corrupted.numel()).index_copy(0, unpadded.indices, real_logits).view_as(corrupted)


def at_slots(tensor, batch):
    """A (B, N) per-slot tensor at the slots mlm_logits computed: all B*N flattened (--unpad: the used P)."""
    return tensor.flatten() if batch.get("used_slots") is None else tensor.flatten()[batch["used_slots"]]


def unpadded_layout(batch, args, device):
    """(electramed.Unpadded, used slots (P,)) of a host batch, moved to the device. The used slots are the
    first counts[b] of each row of the (B, N) masked slots (mask_tokens fills them in that order).
    CHOICE: the MLM head and the sampling run at these P slots only, not at all N as ELECTRA does: at
    L = 512 on PubMed about 2/3 of the slots are unused (bench/results_pretrain.md §2d)."""
    unpadded = em.unpad(batch["attention_mask"]).to(device, non_blocking=True)
    used = (torch.arange(args.num_predictions) < batch["counts"][:, None]).flatten().nonzero().squeeze(-1)
    used = to_device(used, device)
    if args.compile:
        # T and P change every step: marked dynamic, the first compile is already symbolic (unmarked, Dynamo
        # recompiles once); not rounded up, which would bring back padding FLOPs
        for tensor in (unpadded.indices, unpadded.positions, unpadded.slots, used):     # (T,) x 3, (P,)
            torch._dynamo.maybe_mark_dynamic(tensor, 0)
    return unpadded, used


# A.4 FLOP and MFU accounting (docs/paper.md §5, §7).
H100_BF16_PEAK = 989e12          # dense bf16 FLOP/s of an H100 SXM (docs/paper.md §5)


def matmul_flops(disc, gen, tokens, attention, slots) -> float:
    """Matmul FLOPs of training (3x forward): `tokens` rows through every linear layer, `attention` (query,
    key) pairs per layer (sum of len^2), `slots` rows through the MLM head. disc None: the masked-LM baseline."""
    def encoder(c):
        per_token = 2 * (4 * c.hidden_size ** 2 + 2 * c.hidden_size * c.intermediate_size)
        project = 2 * c.embedding_size * c.hidden_size if c.embedding_size != c.hidden_size else 0
        attend = c.num_hidden_layers * 4 * c.hidden_size * attention          # q k^T and p v, 2 FLOPs a product
        return tokens * (c.num_hidden_layers * per_token + project) + attend
    mlm_head = slots * 2 * (gen.hidden_size * gen.embedding_size + gen.embedding_size * gen.vocab_size)
    if disc is None:
        return 3.0 * (encoder(gen) + mlm_head)
    disc_head = tokens * 2 * disc.hidden_size ** 2
    return 3.0 * (encoder(disc) + disc_head + encoder(gen) + mlm_head)


def flops_per_sequence(disc, gen, seq_len, n) -> float:
    """Matmul FLOPs of one full training sequence of seq_len tokens and n MLM slots (ELECTRA's count);
    docs/paper.md §5 gives ~7.8e10 at L=128 and ~3.4e11 at L=512 for base."""
    return matmul_flops(disc, gen, seq_len, seq_len * seq_len, n)


def flop_configs(raw):
    """(discriminator, generator) configs for matmul_flops: (None, encoder) for the masked-LM baseline."""
    if isinstance(raw, MaskedLanguageModel):
        return None, raw.masked_lm.config
    return raw.discriminator.config, raw.generator.config


def useful_mfu(metrics, disc, gen, seconds, world_size) -> float:
    """Model FLOPs utilisation per GPU, of an H100's peak, from summarize()'s token counts: only the
    real tokens' FLOPs count (padding is not useful work, whether or not --unpad skipped it)."""
    flops = matmul_flops(disc, gen, metrics["real_tokens"], metrics["attended_pairs"], metrics["masked_tokens"])
    return flops / seconds / world_size / H100_BF16_PEAK


# A.5 Logging: the statistics since the last log line, the AUC, the held-out slice, log.jsonl.
class TrainingLog:
    """The loop's logs: stats summed since the last log (all processes), AUC, held-out scores, log.jsonl, bar."""

    def __init__(self, args, dist, raw, heldout, autocast, step):
        self.args, self.dist, self.raw, self.heldout, self.autocast = args, dist, raw, heldout, autocast
        self.stats, self.scores = torch.zeros(len(STATS), device=dist.device), []
        self.bar = tqdm(total=args.steps, initial=step, disable=not dist.is_main, desc="pretrain", unit="step")
        self.file = open(Path(args.out_dir) / "log.jsonl", "a") if dist.is_main else None
        self.timer = (time.time(), step)

    def add(self, out):
        self.stats += out["stats"]
        keep_scores(self.scores, out)

    def after_step(self, step, lr, grad_norm):
        """A log line at log steps, with the held-out scores at eval steps (a line of its own off a log step)."""
        args = self.args
        self.bar.update()
        logging = step % args.log_every == 0 or step == args.steps
        evaluating = self.heldout is not None and (step % args.eval_every == 0 or step == args.steps)
        if logging or evaluating:
            metrics = self.summary(step, lr, grad_norm) if logging else {"step": step}
            metrics["flops"] = step * args.flops_per_step      # ELECTRA's count: full-length sequences
            if evaluating:
                metrics.update(evaluate_heldout(self.raw, self.heldout, args, self.dist.device, self.autocast))
                print0(self.dist, f"step {step}: held-out MLM {metrics['heldout_mlm_loss']:.3f}" + (
                    f", acc {metrics['heldout_mlm_acc']:.3f}" if args.objective == "mlm" else
                    f", gen acc {metrics['heldout_gen_acc']:.3f}, disc AUC {metrics['heldout_disc_auc']:.3f}, "
                    f"RTD BCE {metrics['heldout_rtd_loss']:.4f} (base rate {metrics['heldout_rtd_base_entropy']:.4f})"))
            if self.file:
                print(json.dumps(metrics), file=self.file, flush=True)
        if logging:
            shown = ("gen_acc", "disc_auc") if args.objective == "rtd" else ("mlm_acc",)
            self.bar.set_postfix(loss=f"{metrics['loss']:.3f}", **{k: f"{metrics[k]:.3f}" for k in shown},
                                 lr=f"{lr:.2e}", seq_s=f"{metrics['seq_per_s']:.1f}")
            self.timer = (time.time(), step)

    def summary(self, step, lr, grad_norm) -> dict:
        """Summarize the stats since the last log and reset them. disc_auc is over every token this
        process saw since then (the main process's share of the batch); mfu on CUDA (A.4)."""
        metrics = summarize(all_reduce(self.stats, self.dist), self.raw.disc_weight)
        self.stats.zero_()
        seconds = time.time() - self.timer[0]
        metrics.update(step=step, lr=lr, grad_norm=grad_norm.item(),
                       seq_per_s=(step - self.timer[1]) * self.args.batch_size / seconds)
        if self.args.objective == "rtd":
            metrics["disc_auc"] = disc_auc(self.scores)
        if self.dist.device.type == "cuda":
            metrics["mfu"] = useful_mfu(metrics, *flop_configs(self.raw), seconds, self.dist.world_size)
        return metrics

    def close(self):
        self.bar.close()
        if self.file:
            self.file.close()


def summarize(stats, disc_weight=DISC_WEIGHT):
    """Means and rates from summed STATS (docs/paper.md §3's log: generator accuracy, discriminator
    loss/accuracy/precision/recall; disc_baseline_acc is the all-"original" guess). disc_weight None:
    the masked-LM baseline's loss and accuracy only."""
    s = dict(zip(STATS, stats.tolist()))
    mlm, rtd, p = s["mlm_sum"] / s["masked"], s["rtd_sum"] / s["real"], s["replaced"] / s["real"]
    counts = {"real_tokens": s["real"], "masked_tokens": s["masked"], "attended_pairs": s["attended"]}
    if disc_weight is None:
        return {"loss": mlm, "mlm_loss": mlm, "mlm_acc": s["gen_correct"] / s["masked"], **counts}
    return {"loss": mlm + disc_weight * rtd, "mlm_loss": mlm, "rtd_loss": rtd,
            # the BCE of always predicting the base rate p: what rtd_loss must beat to show any learning
            "rtd_base_entropy": 0.0 if p <= 0 or p >= 1 else -(p * math.log(p) + (1 - p) * math.log(1 - p)),
            "gen_acc": s["gen_correct"] / s["masked"], "disc_acc": s["disc_correct"] / s["real"],
            "disc_precision": s["true_pos"] / max(s["pred_pos"], 1),
            "disc_recall": s["true_pos"] / max(s["replaced"], 1), "disc_baseline_acc": 1 - p, **counts}


def keep_scores(scores: list, out) -> None:
    """Keep a micro-batch's discriminator logits and labels on the device (no host read) for the interval's AUC."""
    if "disc_logits" in out:
        scores.append((out["disc_logits"], out["labels"], out["real"]))


def disc_auc(scores: list) -> float:
    """roc_auc over the real tokens of the kept scores; empties the list."""
    logits, labels, real = (torch.cat([p[i].flatten() for p in scores]) for i in range(3))
    scores.clear()
    return roc_auc(logits[real], labels[real])


def roc_auc(scores, labels) -> float:
    """Area under the ROC curve: P(score of a replaced token > score of an original), ties count half (Mann-Whitney
    U, average ranks). scores: (T,) float, labels: (T,) bool. Exact; ELECTRA's tf.metrics.auc uses 200 thresholds."""
    scores, labels = scores.double().flatten(), labels.flatten()
    n_pos = labels.sum().item()
    n_neg = labels.numel() - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inverse, counts = torch.unique(scores, return_inverse=True, return_counts=True)
    ranks = (counts.cumsum(0).double() - (counts - 1) / 2)[inverse]     # 1-based average rank of each score
    return ((ranks[labels].sum().item() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


HELDOUT_STEP = 2 ** 62     # the "step" in the held-out noise seeds: never a training step
HELDOUT_EXAMPLES = 512     # held-out examples scored (at most)


def load_heldout(shard_dir, args):
    """The held-out examples as one batch on the CPU, or None when the run holds none out."""
    if not args.heldout_every or not (Path(shard_dir) / "heldout" / "meta.json").is_file():
        return None
    return PretrainingData(Path(shard_dir) / "heldout", batch_size=1).first_examples(HELDOUT_EXAMPLES)


@torch.no_grad()
def evaluate_heldout(raw, heldout, args, device, autocast=contextlib.nullcontext(), batch_size=64) -> dict:
    """summarize()'s scores (and the AUC) on the held-out slice, with the same masks and samples every time
    (noise seeded by the example's index), so two steps' numbers differ only because the model did. Under
    the training's autocast: the model as it trains (and fp32 would not reach the bf16-only varlen kernel)."""
    was_training = raw.training
    raw.eval()
    stats, scores = torch.zeros(len(STATS), device=device), []
    for first in range(0, len(heldout["input_ids"]), batch_size):
        b = {k: v[first:first + batch_size] for k, v in heldout.items()}
        b["counts"] = count_targets(b["input_ids"], raw.special_ids, raw.pad_id, args.mask_prob, args.num_predictions)
        batch = prepare_batch(b, args, HELDOUT_STEP, first, device)
        batch.update(mlm_denominator=torch.tensor(1.0, device=device), rtd_denominator=torch.tensor(1.0, device=device))
        with autocast:
            out = raw(batch)
        stats += out["stats"]
        keep_scores(scores, out)
    raw.train(was_training)
    metrics = summarize(stats, raw.disc_weight)
    if args.objective == "rtd":
        metrics["disc_auc"] = disc_auc(scores)
    return {f"heldout_{k}": v for k, v in metrics.items()}


def print_plan(args):
    """What the run will do, in three lines."""
    print(f"=> {args.size}: lr {args.lr:g}, batch {args.batch_size} = {args.world_size} processes x "
          f"{args.grad_accum} accumulation steps x {args.micro_batch_size} sequences, seq len {args.seq_len}, "
          f"{args.batch_size * args.seq_len:,} tokens/step")
    model = (f"generator fraction {args.generator_fraction:.3g}" if args.objective == "rtd"
             else "one discriminator-sized encoder, no generator")
    print(f"=> objective {args.objective}, mask prob {args.mask_prob}: N = {args.num_predictions} masked slots per "
          f"example; {model}; {args.steps:,} steps, warmup {args.warmup_steps:,}; "
          f"{args.precision}, compile {args.compile}; out dir {args.out_dir}")
    print(f"=> Adam bias correction {'on' if args.bias_correction else 'off'} (warmup {args.warmup_steps:,} "
          f"steps; the rule: off from {BIAS_CORRECTION_WARMUP:,}, as ELECTRA's 10,000); held-out slice: "
          + (f"every {args.heldout_every}th document, scored every {args.eval_every:,} steps"
             if args.heldout_every else "none"))


def record_run(args, dist, raw):
    """args.flops_per_step (A.4); OUT_DIR/args.json (arguments, versions, device, git commit); the model's size."""
    args.flops_per_step = args.batch_size * flops_per_sequence(*flop_configs(raw), args.seq_len, args.num_predictions)
    if dist.is_main:
        info = {**vars(args), "torch": torch.__version__, **git_state(), "device": str(dist.device),
                "device_name": torch.cuda.get_device_name(dist.device) if dist.device.type == "cuda" else "cpu"}
        (Path(args.out_dir) / "args.json").write_text(json.dumps(info, indent=1))
    print0(dist, "=> parameters: " + ", ".join(f"{name} {em.count_parameters(network):,}"
                                               for name, network in raw.networks().items())
           + f", together {em.count_parameters(raw):,}; {args.flops_per_step:.4g} FLOPs/step")


# A.6 The deferred NaN check. CHOICE: a non-finite loss stops the run at the next log or checkpoint step,
#     not at once (that would read the loss back every micro-batch, a host sync that stalls the GPU's
#     queue); the error names the first bad step, and no checkpoint ever holds its update.
NO_BAD_STEP = 2 ** 62


def first_bad_step(bad_step, step, loss, grad_norm):
    """The first step whose loss or gradient norm was not finite (NO_BAD_STEP while none was), kept on the
    device (no host read); the norm is global, after DDP's all-reduce, so every process marks the same step."""
    return torch.where(torch.isfinite(loss) & torch.isfinite(grad_norm), bad_step, bad_step.clamp(max=step))


def raise_if_not_finite(bad_step, dist, step):
    """Stop the run, naming the first bad step, when first_bad_step marked one on any process."""
    first = int(all_reduce(bad_step.clone(), dist, op=torch_dist.ReduceOp.MIN).item())
    if first != NO_BAD_STEP:
        raise FloatingPointError(f"loss or gradient norm not finite at step {first} (seen at step {step}): "
                                 "stopping (lower --lr?)")


# A.7 Processes and devices (docs/paper.md §5). One process per GPU (NCCL) or per CPU worker (gloo). `--gpus N`
#     / `--nproc N` start the processes here; under torchrun (one or many nodes) RANK/WORLD_SIZE say who we are.
DDP_BUCKET_MB = 25.0    # DDP's gradient buckets, PyTorch's default size (bench/ddp_overlap.py varies it)


def start_processes(args):
    """Run train() in this process, in args.world_size spawned ones, or as one of torchrun's workers."""
    if "RANK" in os.environ:                                  # started by torchrun: we are one worker
        return worker(int(os.environ["LOCAL_RANK"]), args, None)
    # the corpus is packed once, here, before any process starts; errors surface in this process
    prepare_corpus(args.corpus, args.vocab, Path(args.out_dir) / "shards", max_len=args.seq_len,
                   workers=args.data_workers, seed=args.seed, progress=True, heldout_every=args.heldout_every)
    if args.resume and (found := latest_checkpoint(args.out_dir)) is not None:
        load_checkpoint(found, args)                          # fail early on a vocab or objective mismatch
    if args.world_size == 1:
        return worker(0, args, None)
    with socket.socket() as s:                                # a free port for the process group
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(worker, args=(args, port), nprocs=args.world_size, join=True)


def worker(local_rank, args, port):
    """One process: join the process group (if there is more than one), pick the device, train()."""
    if "RANK" in os.environ:                                        # torchrun
        rank, local_rank = int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"])
        world, init = int(os.environ["WORLD_SIZE"]), "env://"
    else:
        rank, world, init = local_rank, args.world_size, f"tcp://127.0.0.1:{port}"
    device = torch.device("cuda", local_rank) if args.gpus else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    host_group = None
    if world > 1:
        torch_dist.init_process_group("nccl" if args.gpus else "gloo", init_method=init,
                                      rank=rank, world_size=world)
        # the per-step counts are all-reduced on the host, so reading them never waits for the GPU
        host_group = torch_dist.new_group(backend="gloo") if args.gpus else None
    try:
        return train(args, Dist(rank, local_rank, world, device, rank == 0, host_group))
    finally:
        if world > 1:
            torch_dist.destroy_process_group()


@dataclass
class Dist:
    rank: int
    local_rank: int
    world_size: int
    device: torch.device
    is_main: bool
    host_group: object = None     # a gloo group for host-side collectives when the default is NCCL


def open_data(args, dist, out_dir):
    """This process's training reader and (main process) the held-out batch; local rank 0 packs the corpus first."""
    out_dir.mkdir(parents=True, exist_ok=True)
    if dist.local_rank == 0:
        prepare_corpus(args.corpus, args.vocab, out_dir / "shards", max_len=args.seq_len,
                       workers=args.data_workers, seed=args.seed, progress=True, heldout_every=args.heldout_every)
    if dist.world_size > 1:
        torch_dist.barrier()
    data = PretrainingData(out_dir / "shards", args.micro_batch_size, dist.rank, dist.world_size, args.seed)
    return data, load_heldout(out_dir / "shards", args) if dist.is_main else None


def global_counts(batches, raw, args, dist, stop_requested):
    """Masked slots and non-pad tokens of this step over all processes (the loss denominators), and whether
    any process was asked to stop; stores each batch's "counts" (B,). On the host: no wait on the GPU."""
    for b in batches:
        b["counts"] = count_targets(b["input_ids"], raw.special_ids, raw.pad_id, args.mask_prob, args.num_predictions)
    local = [sum(b["counts"].sum().item() for b in batches),
             sum((b["input_ids"] != raw.pad_id).sum().item() for b in batches), float(stop_requested)]
    return all_reduce(torch.tensor(local, dtype=torch.float64), dist, group=dist.host_group).tolist()


def check_processes(args):
    """Set args.world_size and args.micro_batch_size from --gpus/--nproc/--grad-accum, or say what is wrong."""
    args.gpus = (1 if torch.cuda.is_available() else 0) if args.gpus is None else args.gpus
    if args.gpus > torch.cuda.device_count():
        raise PretrainError(f"--gpus {args.gpus} asks for more GPUs than torch sees "
                            f"({torch.cuda.device_count()}); use --gpus 0 --nproc N for CPU processes")
    if args.gpus and args.nproc > 1:
        raise PretrainError("--nproc starts CPU processes; with GPUs use --gpus N (one process per GPU)")
    args.world_size = int(os.environ.get("WORLD_SIZE", args.gpus or args.nproc))
    per_step = args.world_size * args.grad_accum
    if args.batch_size % per_step:
        raise PretrainError(f"--batch-size {args.batch_size} is not divisible by {args.world_size} "
                            f"processes x {args.grad_accum} accumulation steps")
    args.micro_batch_size = args.batch_size // per_step


def setup_torch(args, dist):
    """Seeds (model init identical on every process) and matmul flags, set here rather than at import."""
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    if dist.device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True    # fp32 leftovers outside autocast
        torch.backends.cudnn.allow_tf32 = True


def wrap_model(raw, args, dist):
    """torch.compile(DDP(raw)), PyTorch's documented order: the graph splits at DDP's buckets, so each
    all-reduce overlaps the rest of the backward (bench/results_pretrain.md §2c)."""
    model = raw
    if dist.world_size > 1:
        model = DDP(model, device_ids=[dist.local_rank] if dist.device.type == "cuda" else None,
                    bucket_cap_mb=DDP_BUCKET_MB)
    return torch.compile(model) if args.compile else model


def to_device(tensor, device):
    """Host -> device without a host sync: non-blocking from pinned memory (a blocking copy waits for the GPU)."""
    if device.type == "cuda":
        tensor = tensor.pin_memory()
    return tensor.to(device, non_blocking=True)


def has_padding(attention_mask) -> bool:
    """Asked of the loader's host tensor, before the copy: on the device the answer would be a sync."""
    return not attention_mask.all()


def all_reduce(tensor, dist, op=torch_dist.ReduceOp.SUM, group=None):
    if dist.world_size > 1:
        torch_dist.all_reduce(tensor, op=op, group=group)
    return tensor


def print0(dist, *a):
    if dist.is_main:
        tqdm.write(" ".join(map(str, a)))


class StopRequest:
    """SIGTERM or Ctrl-C sets a flag: the loop checkpoints after the step and stops (a second Ctrl-C: at once)."""

    def __init__(self):
        self.requested = False
        self.previous = {sig: signal.signal(sig, self.handle) for sig in (signal.SIGTERM, signal.SIGINT)}

    def handle(self, sig, frame):
        self.requested = True
        signal.signal(sig, self.previous[sig])

    def restore(self):
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)


# A.8 Checkpoint files: written atomically (a temporary name, fsynced, renamed), with the vocabulary's
#     fingerprint and every RNG state; exported in the Hugging Face layout.
def save_checkpoint(out_dir, step, state, keep):
    """Write checkpoints/step_{step}.pt atomically; keep the newest `keep` checkpoints."""
    directory = Path(out_dir) / "checkpoints"
    directory.mkdir(parents=True, exist_ok=True)
    path, tmp = directory / f"step_{step:07d}.pt", directory / f"step_{step:07d}.pt.tmp"
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    for old in sorted(directory.glob("step_*.pt"))[:-keep]:
        old.unlink()


def export_checkpoint(path, out_dir) -> Path:
    """A training checkpoint's networks in the Hugging Face layout under out_dir, so any step can be fine-tuned."""
    state = torch.load(path, map_location="cpu", weights_only=False)
    config = em.ModelConfig(**state["model_config"])
    if state["args"].get("objective", "rtd") == "mlm":
        raw = MaskedLanguageModel(em.Generator(config), (), config.pad_token_id, 0)
    else:
        gen = em.Generator(em.ModelConfig(**state["generator_config"]))
        raw = ReplacedTokenDetection(gen, em.Discriminator(config), (), config.pad_token_id, 0)
    raw.load_state_dict(state["model"])
    for name, network in raw.networks().items():
        em.save_hf_checkpoint(network, Path(out_dir) / name, vocab_file=state["args"]["vocab"])
    print(f"=> exported {', '.join(str(Path(out_dir) / name) for name in raw.networks())}")
    return Path(out_dir)


def latest_checkpoint(out_dir):
    """The newest complete checkpoint in out_dir/checkpoints, or None (temporary files never count)."""
    found = sorted((Path(out_dir) / "checkpoints").glob("step_*.pt"))
    return found[-1] if found else None


def load_checkpoint(path, args, raw=None) -> dict:
    """Read a training checkpoint; refuse one of another vocabulary, objective or (given the model) shape."""
    state = torch.load(path, map_location="cpu", weights_only=False)     # our own file, with RNG tuples
    saved, now = state["vocab"], vocab_fingerprint(args.vocab)
    if saved["sha256"] != now["sha256"]:
        raise PretrainError(f"{path}: trained with vocab {saved['path']} ({saved['size']} entries), but "
                            f"--vocab {args.vocab} ({now['size']} entries) differs: resume with the same vocab")
    objective = state["args"].get("objective", "rtd")
    if objective != args.objective:
        raise PretrainError(f"{path}: saved by an --objective {objective} run; resume it with the same --objective")
    if raw is not None and state["model_config"] != asdict(list(raw.networks().values())[0].config):
        raise PretrainError(f"{path}: saved for model {state['model_config']}, this run builds "
                            f"another: resume with the same --size/--seq-len")
    return state


def vocab_fingerprint(path) -> dict:
    data = Path(path).read_bytes()
    return {"path": str(path), "sha256": hashlib.sha256(data).hexdigest(), "size": data.count(b"\n")}


def gather_rng_states(dist) -> list:
    """Every process's RNG states, in rank order (for the checkpoint the main process writes)."""
    state = {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}
    if dist.device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(dist.device)
    if dist.world_size == 1:
        return [state]
    rngs = [None] * dist.world_size
    torch_dist.all_gather_object(rngs, state)
    return rngs


def set_rng_state(state, device):
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


if __name__ == "__main__":
    try:
        main(parse_args())
    except (PretrainError, DataError, TokenizerError, em.CheckpointError) as e:
        sys.exit(f"error: {e}")
