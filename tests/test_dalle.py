"""The tiny DALL-E's parts: caption tokens, one sequence, a causal GPT, KV-cache sampling, judging."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from PIL import Image

import mmlesson
from mmlesson import data, judge
from mmlesson.dalle import CaptionTokenizer, Dalle, load_dalle
from mmlesson.errors import MMLessonError
from mmlesson.train_dalle import (
    CONTEXT_LENGTH,
    DalleTraining,
    course_words,
    encode_world,
    new_tiny_dalle,
    train_dalle,
)
from mmlesson.vqgan import load_tiny_vqgan

CAPTION = "a large red circle on the left"


@pytest.fixture(scope="module")
def vqgan():
    return load_tiny_vqgan().eval()


@pytest.fixture(scope="module")
def dalle(vqgan) -> Dalle:
    """An untrained, narrow DALL-E: the contracts do not depend on trained weights."""
    return new_tiny_dalle(vqgan, n_layer=2, n_head=2, n_embd=32, seed=0)


@pytest.fixture(scope="module")
def tokenizer() -> CaptionTokenizer:
    return CaptionTokenizer(course_words(), CONTEXT_LENGTH)


# -- captions -----------------------------------------------------------------------------------------------


def test_every_course_caption_survives_the_round_trip(tokenizer):
    texts = data.course_texts()
    ids = tokenizer(texts)
    assert ids.shape == (len(texts), CONTEXT_LENGTH) and ids.dtype == torch.long
    assert [tokenizer.decode(row) for row in ids] == texts
    assert (ids[:, -1] == 0).all()  # the longest caption leaves room: nothing was cut


def test_captions_are_read_case_and_spacing_blind_and_padded_with_zeros(tokenizer):
    ids = tokenizer(["A Red   Circle", "on the left: a small blue star"])
    assert tokenizer.decode(ids[0]) == "a red circle"
    assert ids[0, 3:].eq(0).all() and ids[0, :3].ne(0).all()
    assert tokenizer.decode(ids[1]) == "on the left: a small blue star"


# -- one sequence of text and image tokens ------------------------------------------------------------------


def test_a_caption_and_an_image_make_one_sequence_and_come_back(dalle, vqgan):
    batch = data.ShapesWorld(seed=4).sample(3)
    sequences = dalle.to_sequence(batch.captions, batch.images)
    assert sequences.shape == (3, CONTEXT_LENGTH + 64)
    text, codes = sequences[:, :CONTEXT_LENGTH], sequences[:, CONTEXT_LENGTH:]
    assert text.max() < dalle.tokenizer.vocab_size <= codes.min()  # image codes come after the words
    grids = vqgan.encode(batch.images)
    assert torch.equal(codes - dalle.tokenizer.vocab_size, grids.flatten(1))
    assert torch.equal(dalle.to_sequence(batch.captions, grids), sequences)  # token grids are taken too

    captions, images = dalle.from_sequence(sequences)
    assert captions == batch.captions
    decoded = (vqgan.decode(grids) * 255).round().byte().permute(0, 2, 3, 1)
    assert all(torch.equal(torch.from_numpy(np.array(a)), b) for a, b in zip(images, decoded))


def test_sequence_shapes_and_counts_are_checked(dalle):
    batch = data.ShapesWorld(seed=4).sample(2)
    with pytest.raises(ValueError, match="3 captions but 2 images"):
        dalle.to_sequence([CAPTION] * 3, batch.images)
    with pytest.raises(ValueError, match=r"must be \[N, 76\]"):
        dalle.from_sequence(torch.zeros(2, 70, dtype=torch.long))
    with pytest.raises(ValueError, match=r"in 0\.\.511"):
        dalle.to_sequence([CAPTION], torch.full((1, 8, 8), 512))


def test_the_loss_counts_the_image_tokens_only(dalle):
    sequences = encode_world(dalle, data.ShapesWorld(seed=2), 4, progress=False)
    with torch.no_grad():
        loss = dalle.loss(sequences)
        logits, _ = dalle.gpt(sequences[:, :-1])
        targets = sequences[:, CONTEXT_LENGTH:] - dalle.tokenizer.vocab_size
        expected = torch.nn.functional.cross_entropy(logits[:, CONTEXT_LENGTH - 1 :].transpose(1, 2), targets)
    assert loss.item() == pytest.approx(expected.item(), rel=1e-5)
    assert loss.item() == pytest.approx(math.log(512), rel=0.05)  # untrained: about uniform over the codes


def test_training_lowers_the_loss_and_reports_each_step(vqgan):
    model = new_tiny_dalle(vqgan, n_layer=1, n_head=2, n_embd=32, seed=1)
    sequences = encode_world(model, data.ShapesWorld(seed=3), 8, progress=False)
    seen = []
    settings = DalleTraining(steps=40, batch_size=8, peak_lr=3e-3, warmup=5)
    losses = train_dalle(model, sequences, settings, progress=False, on_step=lambda s, v: seen.append(s))
    assert seen == list(range(40)) and len(losses) == 40
    assert sum(losses[-5:]) / 5 < 0.8 * sum(losses[:5]) / 5
    assert not model.gpt.training


# -- the GPT ------------------------------------------------------------------------------------------------


def test_attention_is_causal(dalle):
    """Changing token j changes the logits at j and after it, never before it."""
    gpt = dalle.gpt
    idx = torch.randint(gpt.config.vocab_size, (2, 30), generator=torch.Generator().manual_seed(0))
    changed = idx.clone()
    changed[:, 20] = (changed[:, 20] + 1) % gpt.config.vocab_size
    with torch.no_grad():
        before, _ = gpt(idx)
        after, _ = gpt(changed)
    assert torch.equal(before[:, :20], after[:, :20])
    assert not torch.allclose(before[:, 20:], after[:, 20:])


def test_the_kv_cache_gives_the_logits_of_a_full_pass(dalle):
    gpt = dalle.gpt
    idx = torch.randint(gpt.config.vocab_size, (3, 25), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full, _ = gpt(idx)
        first, cache = gpt(idx[:, :10])
        steps = [first]
        for position in range(10, 25):
            logits, cache = gpt(idx[:, position : position + 1], cache)
            steps.append(logits)
    assert torch.allclose(torch.cat(steps, dim=1), full, atol=1e-5)
    assert cache[0][0].shape == (3, 2, 25, 16)  # keys of every position, per head


def test_cached_sampling_draws_exactly_the_tokens_of_full_recomputation(dalle):
    for temperature, top_k in [(1.0, None), (0.7, 20)]:
        cached = dalle.sample_codes([CAPTION, "a small blue star"], 3, temperature, top_k, seed=5)
        recomputed = dalle.sample_codes(
            [CAPTION, "a small blue star"], 3, temperature, top_k, seed=5, use_cache=False
        )
        assert cached.shape == (6, 64) and torch.equal(cached, recomputed)


def test_the_gpt_refuses_sequences_longer_than_its_positions(dalle):
    with pytest.raises(ValueError, match="77 tokens long; this GPT has positions for 76"):
        dalle.gpt(torch.zeros(1, 77, dtype=torch.long))


# -- sampling -----------------------------------------------------------------------------------------------


def test_generate_gives_64px_images_reproducibly_by_seed(dalle):
    images = dalle.generate(CAPTION, n=2, seed=3)
    assert len(images) == 2 and all(isinstance(i, Image.Image) for i in images)
    assert all(i.size == (64, 64) and i.mode == "RGB" for i in images)
    assert torch.equal(dalle.sample_codes(CAPTION, 2, seed=3), dalle.sample_codes(CAPTION, 2, seed=3))
    assert not torch.equal(dalle.sample_codes(CAPTION, 2, seed=3), dalle.sample_codes(CAPTION, 2, seed=4))
    assert len(dalle.generate([CAPTION, "a red star"], n=3)) == 6


def test_top_k_1_always_takes_the_most_likely_code(dalle):
    assert torch.equal(
        dalle.sample_codes(CAPTION, 2, top_k=1, seed=0), dalle.sample_codes(CAPTION, 2, top_k=1, seed=9)
    )
    assert dalle.sample_codes(CAPTION, 1, top_k=512).shape == (1, 64)  # the whole codebook is allowed


def test_images_are_made_batch_by_batch_as_sample_codes_draws_them(dalle):
    """generate decodes each batch as it is sampled: its images are those of sample_codes's codes for the
    same seed and batch_size, decoded batch by batch, and the first batch draws what a call of that size
    alone draws. (Decoding another number of images at once may round a pixel differently.)"""
    codes = dalle.sample_codes(CAPTION, 5, seed=2, batch_size=2)
    images = dalle.generate(CAPTION, n=5, seed=2, batch_size=2)
    decoded = [image for batch in codes.split(2) for image in dalle.decode(batch)]
    assert [image.tobytes() for image in images] == [image.tobytes() for image in decoded]
    assert torch.equal(dalle.sample_codes(CAPTION, 2, seed=2, batch_size=2), codes[:2])


# Odd arguments of generate and sample_codes (captions, n, temperature, top_k, seed, the GPU running out of
# memory): the table in tests/test_bad_input_generation.py.


def test_a_gpt_that_does_not_fit_the_tokenizer_and_vqgan_is_refused(dalle, vqgan):
    small = CaptionTokenizer(["a", "red"], CONTEXT_LENGTH)
    with pytest.raises(ValueError, match="does not fit this tokenizer and VQGAN"):
        Dalle(dalle.gpt, vqgan, small)


def test_only_the_tiny_profile_exists():
    with pytest.raises(MMLessonError, match="tiny profile only.*load_dalle\\(profile='tiny'\\)"):
        load_dalle(profile="full")
    with pytest.raises(MMLessonError, match="Unknown profile"):
        load_dalle(profile="huge")
    assert mmlesson.load_dalle is load_dalle


# -- judging pictures ---------------------------------------------------------------------------------------


def test_the_pixel_judge_reads_real_shapes_correctly():
    batch = data.ShapesWorld(seed=11).sample(600)
    assert [judge.dominant_color(i) for i in batch.images] == [a["color"] for a in batch.attributes]
    positions = [judge.object_position(i) == a["position"] for i, a in zip(batch.images, batch.attributes)]
    # A large triangle's centroid lies a sixth of its height below its box's center: the world's jitter
    # takes about 1 in 600 of them past the middle line between top and center, or center and bottom.
    assert sum(positions) >= 598


def test_an_empty_picture_has_no_position():
    assert judge.object_position(Image.new("RGB", (64, 64), data.BACKGROUND_RGB)) is None


def test_rerank_puts_what_clip_matches_best_first():
    clip = mmlesson.load_clip("tiny", device="cpu")
    images = [
        data.render(color, shape, "large", "center")
        for color, shape in [("blue", "square"), ("red", "star"), ("green", "heart")]
    ]
    ranked = judge.rerank(clip, "a large red star in the center", images)
    assert ranked[0] is images[1] and sorted(map(id, ranked)) == sorted(map(id, images))
    scores = judge.clip_scores(clip, "a large red star in the center", ranked)
    assert (scores[:-1] >= scores[1:]).all()
    verdict = judge.match_attributes(
        clip, images, [{"color": "blue", "shape": "square", "position": "left"}] * 3
    )
    assert verdict["color"] == [True, False, False] and verdict["position"] == [False] * 3
    assert verdict["shape"][0] is True and verdict["shape"][1] is False
