"""electramed.py: the encoder, generator and discriminator.

Checks the paths agree (masked-only MLM head == full head gathered) and the generator shares the
discriminator's embedding block. Run: python -m pytest tests/test_electramed.py
"""
import torch

import electramed as em


def tiny_pair(vocab_size=100):
    disc = em.Discriminator(em.model_config("tiny", vocab_size))
    gen = em.Generator(em.generator_config(disc.config, em.GENERATOR_FRACTION["tiny"]))
    em.tie_generator_to(gen, disc)
    return gen.eval(), disc.eval()


def test_generator_shares_the_embedding_block():
    gen, disc = tiny_pair()
    assert gen.encoder.embeddings is disc.encoder.embeddings
    assert gen.encoder.embeddings.word_embeddings.weight is disc.encoder.embeddings.word_embeddings.weight


def test_masked_only_head_equals_full_head_gathered():
    gen, _ = tiny_pair()
    ids = torch.randint(0, 100, (3, 20))
    positions = torch.randint(0, 20, (3, 5))
    full = gen(ids)                                                    # (B, L, V)
    gathered = full.gather(1, positions[:, :, None].expand(-1, -1, full.shape[-1]))
    torch.testing.assert_close(gen(ids, positions=positions), gathered, rtol=0, atol=1e-5)
