"""DALL-E 1 in miniature: one small GPT writes an image's VQGAN tokens after the words of its caption.

DALL-E (Ramesh et al., "Zero-Shot Text-to-Image Generation", 2021) turns a caption into text tokens and an
image into a grid of image tokens, joins them into one sequence, and trains a decoder-only transformer to
predict every token from the tokens before it. To draw, it is given the caption and samples the image tokens
one at a time; a decoder paints the finished grid. This module is that idea at the size of the course:

- text: one token per word of the Shapes-world vocabulary (34 words), padded to a fixed length, because
  a word-level vocabulary is all a world of 34 words needs (DALL-E uses BPE over 16,384 pieces);
- image: the tiny VQGAN's 8x8 grid of codes (lesson 4), read row by row: 64 tokens from 512 codes;
- one sequence: `[caption words, padding] + [64 image codes]`, in one vocabulary where the image codes come
  after the words (`CaptionTokenizer.vocab_size + code`);
- one GPT in the style of minGPT/nanoGPT: token and position embeddings, pre-LayerNorm blocks, causal
  self-attention written out; it reads words and codes but writes only codes, and its loss counts only the
  image tokens (the caption is always given, never generated);
- sampling with temperature and top-k, and a KV cache: each new token runs the network on one position
  and reuses the keys and values of the positions before it, instead of re-running the whole prefix.

    >>> dalle = load_dalle("tiny")
    >>> images = dalle.generate("a large red circle on the left", n=4, seed=0)   # four 64x64 PIL images

The shipped weights are trained by `python -m mmlesson train dalle`, which also measures them (see its
manifest). Only the tiny profile exists: OpenAI published DALL-E's image tokenizer but not its transformer.
"""

from __future__ import annotations

import math
import numbers
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from mmlesson import runtime
from mmlesson.checks import check_int, check_seed
from mmlesson.clip import ImageInput, OutOfMemoryAdvice
from mmlesson.course import assets
from mmlesson.course.assets import WEIGHTS_DIR
from mmlesson.errors import InputError, MMLessonError
from mmlesson.images import tensor_to_pil
from mmlesson.vqgan import TINY_VQGAN_NAME, VQGAN, load_tiny_vqgan

# The names lessons use; see API.md.
__all__ = [
    "TINY_DALLE_NAME",
    "CaptionTokenizer",
    "GPTConfig",
    "CausalSelfAttention",
    "Block",
    "GPT",
    "Dalle",
    "load_dalle",
    "load_tiny_dalle",
    "split_words",
]

TINY_DALLE_NAME = "mmlesson-tiny-dalle"
PAD = "<pad>"  # text id 0: fills the caption slots a short caption leaves empty
_WORDS = re.compile(r"[a-z]+|[^a-z\s]")  # a run of letters, or one punctuation mark (',' and ':' are words)
# DALL-E drew 512 samples per caption to keep CLIP's favourites; more than 1000 per call is minutes of
# sampling on a laptop and a list of images held in memory at once: a loop over seeds that saves each batch
# does that better.
MAX_IMAGES_PER_CAPTION = 1000
# Below this temperature sampling always takes the most likely code anyway (a logit gap of 0.01 becomes
# odds of 22,000 to 1), and dividing by far smaller numbers overflows the logits to inf and then NaN.
MIN_TEMPERATURE = 1e-3
# Samples drawn at once by default. The tiny model's KV cache for 512 sequences is about 20 MB, and every
# evaluation the lessons and the trainer run (up to 40 captions x 8 samples per call) stays one batch, so
# their samples are the ones they drew before sampling was batched.
SAMPLES_PER_BATCH = 512

KVCache = list[tuple[torch.Tensor, torch.Tensor]]  # per block: keys and values [B, heads, T, head_size]


# -- captions ---------------------------------------------------------------------------------------------


def split_words(text: str) -> list[str]:
    """Lower-cased words and punctuation marks: "A red circle, large" -> [a, red, circle, ',', large]."""
    return _WORDS.findall(text.lower())


class CaptionTokenizer:
    """Words <-> ids: id 0 is padding, ids 1.. the known words; every caption becomes `context_length` ids.

    Unknown words are refused rather than mapped to an "unknown" token: a model that silently ignored
    "dog" in "a red dog" would draw something and let the learner believe it understood.
    """

    def __init__(self, words: Sequence[str], context_length: int) -> None:
        self.words = [PAD, *sorted(set(words))]
        self.ids = {word: i for i, word in enumerate(self.words)}
        self.context_length = context_length

    def __repr__(self) -> str:
        return f"CaptionTokenizer({len(self.words) - 1} words, context_length={self.context_length})"

    @property
    def vocab_size(self) -> int:
        return len(self.words)

    def encode(self, caption: str) -> list[int]:
        """The ids of a caption's words, without padding; a clear error for what the model cannot read."""
        if not isinstance(caption, str):
            raise InputError(f"a caption must be a string, got {type(caption).__name__}: {caption!r}")
        words = split_words(caption)
        if not words:
            raise InputError(
                f"the caption {caption!r} is empty: describe one object, e.g. 'a large red circle on the "
                "left'"
            )
        unknown = sorted({word for word in words if word not in self.ids})
        if unknown:
            raise InputError(
                f"the caption {caption!r} uses words this model never saw: {', '.join(unknown)}. It knows "
                f"only the Shapes-world words: {', '.join(self.words[1:])}"
            )
        if len(words) > self.context_length:
            raise InputError(
                f"the caption {caption!r} has {len(words)} words and marks; this model reads at most "
                f"{self.context_length}"
            )
        return [self.ids[word] for word in words]

    def __call__(self, captions: str | Sequence[str]) -> torch.Tensor:
        """Ids [N, context_length] (long), each caption padded with id 0 at the end."""
        captions = [captions] if isinstance(captions, str) else list(captions)
        if not captions:
            raise InputError("no captions given: pass at least one")
        ids = torch.zeros(len(captions), self.context_length, dtype=torch.long)
        for row, caption in enumerate(captions):
            encoded = self.encode(caption)
            ids[row, : len(encoded)] = torch.tensor(encoded)
        return ids

    def decode(self, ids: Sequence[int] | torch.Tensor) -> str:
        """The caption of a row of ids, padding left out: decode(tokenizer(c)[0]) == c for course captions."""
        words = [self.words[i] for i in torch.as_tensor(ids).tolist() if i != 0]
        return re.sub(r" ([,:])", r"\1", " ".join(words))


# -- the GPT ------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GPTConfig:
    """The shape of a GPT. It reads `vocab_size` kinds of tokens (words and codes) and writes `n_codes`."""

    vocab_size: int
    n_codes: int
    block_size: int  # the longest sequence it reads: the positions it has embeddings for
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention in which each position sees only itself and the positions before it."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.n_head = config.n_head
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd)
        self.proj = nn.Linear(config.n_embd, config.n_embd)

    def forward(
        self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """Attend over `past` keys/values (earlier positions, from the cache) and x's own; return the
        output and the keys/values of all positions so far, to be the cache of the next call."""
        batch, length, width = x.shape
        q, k, v = self.qkv(x).split(width, dim=2)
        q, k, v = (
            t.view(batch, length, self.n_head, width // self.n_head).transpose(1, 2) for t in (q, k, v)
        )
        if past is not None:
            k, v = torch.cat([past[0], k], dim=2), torch.cat([past[1], v], dim=2)
        # The new positions come after the `earlier` cached ones: new position i may see keys 0..earlier+i.
        earlier = k.shape[2] - length
        visible = torch.ones(length, k.shape[2], dtype=torch.bool, device=x.device).tril(diagonal=earlier)
        scores = (q @ k.transpose(-2, -1)) / math.sqrt(k.shape[-1])
        weights = scores.masked_fill(~visible, float("-inf")).softmax(dim=-1)
        y = (weights @ v).transpose(1, 2).reshape(batch, length, width)
        return self.proj(y), (k, v)


class Block(nn.Module):
    """A transformer block, pre-LayerNorm as in GPT-2: x + attention(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(config.n_embd)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(config.n_embd)
        self.mlp = nn.Sequential(
            nn.Linear(config.n_embd, 4 * config.n_embd),
            nn.GELU(),
            nn.Linear(4 * config.n_embd, config.n_embd),
        )

    def forward(
        self, x: torch.Tensor, past: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        attended, cache = self.attn(self.ln_1(x), past)
        x = x + attended
        return x + self.mlp(self.ln_2(x)), cache


class GPT(nn.Module):
    """A decoder-only transformer: token + position embeddings, `n_layer` blocks, a head over the codes."""

    def __init__(self, config: GPTConfig) -> None:
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.n_layer))
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.head = nn.Linear(config.n_embd, config.n_codes, bias=False)
        self.apply(_init_weights)
        for block in self.blocks:  # GPT-2: scale the layers that add to the residual stream by its depth
            for layer in (block.attn.proj, block.mlp[2]):
                nn.init.normal_(layer.weight, std=0.02 / math.sqrt(2 * config.n_layer))

    def __repr__(self) -> str:
        c = self.config
        return (
            f"GPT({c.n_layer} layers, {c.n_head} heads, width {c.n_embd}, reads {c.vocab_size} token kinds, "
            f"writes {c.n_codes}, {c.block_size} positions, {self.n_params() / 1e6:.2f}M parameters)"
        )

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @property
    def device(self) -> torch.device:
        return self.wte.weight.device

    def forward(self, idx: torch.Tensor, past: KVCache | None = None) -> tuple[torch.Tensor, KVCache]:
        """Logits [B, T, n_codes] for the code that follows each position of idx [B, T], and the KV cache.

        With `past` (the cache of an earlier call), idx holds only the new tokens: they sit at positions
        len(past) onwards and attend to the cached positions as well as to each other.
        """
        start = 0 if past is None else past[0][0].shape[2]
        if start + idx.shape[1] > self.config.block_size:
            raise InputError(
                f"the sequence is {start + idx.shape[1]} tokens long; this GPT has positions for "
                f"{self.config.block_size}"
            )
        positions = torch.arange(start, start + idx.shape[1], device=idx.device)
        x = self.wte(idx) + self.wpe(positions)
        cache = []
        for k, block in enumerate(self.blocks):
            x, block_cache = block(x, None if past is None else past[k])
            cache.append(block_cache)
        return self.head(self.ln_f(x)), cache


def _init_weights(module: nn.Module) -> None:
    """GPT-2's initialization: small normal weights, zero biases (LayerNorm keeps its ones and zeros)."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


def next_code(
    logits: torch.Tensor, temperature: float, top_k: int | None, generator: torch.Generator
) -> torch.Tensor:
    """Sample one code per row of logits [B, n_codes]: divide by the temperature (below 1 sharpens the
    distribution, above 1 flattens it), keep only the k most likely codes if top_k is given."""
    logits = logits / temperature
    if top_k is not None:
        kth_best = logits.topk(top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth_best, float("-inf"))
    return torch.multinomial(logits.softmax(dim=-1), 1, generator=generator).squeeze(1)


# -- DALL-E: the GPT, the caption tokenizer and the VQGAN together ------------------------------------------


class Dalle:
    """Caption -> image tokens (the GPT) -> pixels (the VQGAN's decoder).

    `gpt` is the only part that learns here; the VQGAN and the tokenizer are fixed, as in DALL-E, whose
    transformer is trained on the tokens of an already trained image tokenizer.
    """

    def __init__(self, gpt: GPT, vqgan: VQGAN, tokenizer: CaptionTokenizer, name: str = "dalle") -> None:
        wanted = self.gpt_shape(tokenizer, vqgan)
        found = {key: getattr(gpt.config, key) for key in wanted}
        if found != wanted:
            raise InputError(
                f"this GPT does not fit this tokenizer and VQGAN: it has {found}, they need {wanted}"
            )
        self.gpt, self.vqgan, self.tokenizer, self.name = gpt, vqgan, tokenizer, name

    def __repr__(self) -> str:
        return f"Dalle(name={self.name!r}, {self.gpt!r}, {self.vqgan!r})"

    @staticmethod
    def gpt_shape(tokenizer: CaptionTokenizer, vqgan: VQGAN) -> dict[str, int]:
        """What a GPT must read and write to join this tokenizer and this VQGAN."""
        return {
            "vocab_size": tokenizer.vocab_size + vqgan.codebook_size,
            "n_codes": vqgan.codebook_size,
            "block_size": tokenizer.context_length + vqgan.grid**2,
        }

    @classmethod
    def untrained(
        cls, vqgan: VQGAN, tokenizer: CaptionTokenizer, n_layer: int = 4, n_head: int = 4, n_embd: int = 128
    ) -> Dalle:
        """A fresh GPT sized for this tokenizer and VQGAN (to train, e.g. with `train_dalle.train_dalle`)."""
        config = GPTConfig(**cls.gpt_shape(tokenizer, vqgan), n_layer=n_layer, n_head=n_head, n_embd=n_embd)
        return cls(GPT(config).to(vqgan.device), vqgan, tokenizer, "untrained")

    @property
    def device(self) -> torch.device:
        return self.gpt.device

    def to(self, device: str | torch.device) -> Dalle:
        """Move the GPT and the VQGAN to a device; returns self, like `nn.Module.to`."""
        self.gpt.to(device)
        self.vqgan.to(device)
        return self

    @property
    def text_length(self) -> int:
        """Caption slots at the start of every sequence."""
        return self.tokenizer.context_length

    @property
    def image_length(self) -> int:
        """Image tokens after the caption: the VQGAN's grid, row by row."""
        return self.vqgan.grid**2

    # -- one sequence of text and image tokens ---------------------------------------------------------

    def to_sequence(
        self, captions: str | Sequence[str], images: ImageInput | Sequence[ImageInput] | torch.Tensor
    ) -> torch.Tensor:
        """The token sequences [N, text_length + image_length] of captions and their images.

        `images`: what `VQGAN.encode` takes (PIL images, paths, a float tensor [N, 3, H, W] in [0, 1]), or
        token grids already encoded, a long tensor [N, h, w].
        """
        text = self.tokenizer(captions)
        if isinstance(images, torch.Tensor) and not images.is_floating_point():
            grids = self.vqgan.check_indices(images)
        else:
            grids = self.vqgan.encode(images)
        if len(grids) != len(text):
            raise InputError(f"{len(text)} captions but {len(grids)} images: give one caption per image")
        codes = grids.flatten(1).cpu() + self.tokenizer.vocab_size
        return torch.cat([text, codes], dim=1)

    def from_sequence(self, sequences: torch.Tensor) -> tuple[list[str], list[Image.Image]]:
        """Back from sequences [N, text_length + image_length]: the captions and the images they hold."""
        sequences = torch.as_tensor(sequences)
        sequences = sequences.unsqueeze(0) if sequences.ndim == 1 else sequences
        if sequences.ndim != 2 or sequences.shape[1] != self.text_length + self.image_length:
            raise InputError(
                f"sequences must be [N, {self.text_length + self.image_length}] "
                f"({self.text_length} caption slots, then {self.image_length} image tokens); got "
                f"{tuple(sequences.shape)}"
            )
        text, codes = sequences.split([self.text_length, self.image_length], dim=1)
        captions = [self.tokenizer.decode(row) for row in text]
        return captions, self.decode(codes - self.tokenizer.vocab_size)

    def decode(self, codes: torch.Tensor) -> list[Image.Image]:
        """PIL images painted by the VQGAN from codes [N, image_length] or grids [N, h, w]."""
        grid = self.vqgan.grid
        return tensor_to_pil(self.vqgan.decode(torch.as_tensor(codes).reshape(-1, grid, grid)))

    # -- training --------------------------------------------------------------------------------------

    def loss(self, sequences: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of predicting each image token from the caption and the image tokens before it.

        The GPT reads the sequence without its last token; the output at the last caption slot predicts
        image token 0, the output at image token i predicts image token i + 1. The caption is never a
        target: the model is always given it.
        """
        sequences = sequences.to(self.device)
        logits, _ = self.gpt(sequences[:, :-1])
        predicted = logits[:, self.text_length - 1 :]
        targets = sequences[:, self.text_length :] - self.tokenizer.vocab_size
        return F.cross_entropy(predicted.reshape(-1, predicted.shape[-1]), targets.reshape(-1))

    # -- sampling --------------------------------------------------------------------------------------

    def sample_codes(
        self,
        captions: str | Sequence[str],
        n: int = 1,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int = 0,
        use_cache: bool = True,
        batch_size: int = SAMPLES_PER_BATCH,
    ) -> torch.Tensor:
        """Codes [len(captions) * n, image_length]: n samples per caption, the captions' samples in order.

        With `use_cache=False` every step re-runs the GPT over the whole sequence so far instead of the one
        new token: the same tokens (the same arithmetic, up to rounding) for more work at every step; it is
        here to show what the KV cache saves (benchmarks/bench_dalle.py). `batch_size` samples are drawn at
        once, as in `generate`.
        """
        batches = self._code_batches(
            captions, n, temperature, top_k, seed, use_cache=use_cache, batch_size=batch_size
        )
        with OutOfMemoryAdvice.for_batches("sampling images", batch_size):
            return torch.cat(list(batches))

    def generate(
        self,
        caption: str | Sequence[str],
        n: int = 1,
        temperature: float = 1.0,
        top_k: int | None = None,
        seed: int = 0,
        batch_size: int = SAMPLES_PER_BATCH,
    ) -> list[Image.Image]:
        """n images (64x64 PIL) for a caption, or n per caption for a list, the same for the same seed (and
        batch_size).

        temperature (at least 0.001) divides the logits (below 1: safer, above 1: wilder); top_k keeps only
        the k most likely codes at every step (1 to the codebook's size; None keeps all). n may be up to
        1000 per caption; the images are made `batch_size` at a time, so memory stays bounded.
        """
        batches = self._code_batches(
            caption, n, temperature, top_k, seed, use_cache=True, batch_size=batch_size
        )
        with OutOfMemoryAdvice.for_batches("sampling images", batch_size):
            return [image for codes in batches for image in self.decode(codes)]

    def _code_batches(
        self,
        captions: str | Sequence[str],
        n: int,
        temperature: float,
        top_k: int | None,
        seed: int,
        use_cache: bool,
        batch_size: int,
    ) -> Iterator[torch.Tensor]:
        """The codes of each batch of at most `batch_size` samples, in order, sampled as they are asked for.

        The arguments are checked now, before any work. One random generator serves all batches, so the
        samples depend on the seed and the batch size only, not on how the caller consumes them.
        """
        _check_count(n)
        check_int(batch_size, "batch_size")
        temperature, top_k = self._check_sampling(temperature, top_k)
        generator = torch.Generator(self.device).manual_seed(check_seed(seed))
        rows = self.tokenizer(captions).repeat_interleave(n, dim=0)
        return (
            self._sample(rows[start : start + batch_size], temperature, top_k, generator, use_cache)
            for start in range(0, len(rows), batch_size)
        )

    @torch.no_grad()
    def _sample(
        self,
        captions: torch.Tensor,
        temperature: float,
        top_k: int | None,
        generator: torch.Generator,
        use_cache: bool,
    ) -> torch.Tensor:
        """Codes [B, image_length] sampled after caption ids [B, text_length], one token at a time."""
        was_training = self.gpt.training
        self.gpt.eval()
        sequence = captions.to(self.device)
        start, inputs, cache = sequence.shape[1], sequence, None
        for _ in range(self.image_length):
            logits, new_cache = self.gpt(inputs, cache)
            code = next_code(logits[:, -1], temperature, top_k, generator)
            sequence = torch.cat([sequence, code[:, None] + self.tokenizer.vocab_size], dim=1)
            # With the cache, the next call reads only the new token; without, the whole sequence again.
            inputs, cache = (sequence[:, -1:], new_cache) if use_cache else (sequence, None)
        self.gpt.train(was_training)
        return sequence[:, start:] - self.tokenizer.vocab_size

    def _check_sampling(self, temperature: float, top_k: int | None) -> tuple[float, int | None]:
        codes = self.vqgan.codebook_size
        if top_k is not None and (
            isinstance(top_k, bool) or not isinstance(top_k, numbers.Integral) or not 1 <= top_k <= codes
        ):
            raise InputError(
                f"top_k must be None (sample from all {codes} codes) or an integer from 1 to {codes} (the "
                f"size of the VQGAN's codebook), got {top_k!r}"
            )
        return _check_temperature(temperature), None if top_k is None else int(top_k)


def _check_temperature(temperature: float) -> float:
    if (
        isinstance(temperature, bool)
        or not isinstance(temperature, numbers.Real)
        or not math.isfinite(temperature)
        or temperature <= 0
    ):
        raise InputError(
            f"temperature must be a number > 0, got {temperature!r}: 1.0 samples the model as trained, "
            "lower values (e.g. 0.7) play safer, higher values take more risks. For the single most "
            "likely code at every step, use top_k=1."
        )
    if temperature < MIN_TEMPERATURE:
        raise InputError(
            f"temperature {temperature!r} is too small: below {MIN_TEMPERATURE} sampling always takes the "
            "most likely code anyway, and dividing by far smaller numbers overflows. For the single most "
            "likely code at every step, use top_k=1."
        )
    return float(temperature)


def _check_count(n: int) -> None:
    """n images per caption: a positive integer, and no more than one call should make."""
    check_int(n, "n", means=": the number of images per caption")
    if n > MAX_IMAGES_PER_CAPTION:
        raise InputError(
            f"n={n} images per caption is more than one call makes (at most {MAX_IMAGES_PER_CAPTION}; "
            "DALL-E itself drew 512 to rerank): call generate in a loop with seed=0, 1, 2, ... and save "
            "each batch of images before the next"
        )


# -- loading ------------------------------------------------------------------------------------------------


def load_dalle(profile: str | None = "tiny", device: str | torch.device | None = None) -> Dalle:
    """The course's DALL-E: the tiny profile only (None means tiny too).

    There is no full profile: OpenAI released DALL-E's image tokenizer (the dVAE) but not its
    12-billion-parameter transformer, and no open text-to-image transformer over the full VQGAN's tokens
    fits the course. The tiny model runs anywhere; `device="cuda"` puts it on a GPU.
    """
    if profile == "full":
        raise MMLessonError(
            "DALL-E exists in the tiny profile only: the transformer of the original DALL-E was never "
            "published, and no open one writes the full VQGAN's tokens. Use load_dalle(profile='tiny') "
            "(it works with a GPU too: device='cuda'); lesson 5's guided.generate is the full profile's "
            "text-to-image method."
        )
    _, target = runtime.profile_and_device(profile or "tiny", device)
    return load_tiny_dalle().to(target)


def load_tiny_dalle(weights_dir: Path = WEIGHTS_DIR) -> Dalle:
    """The shipped tiny DALL-E, trained by `python -m mmlesson train dalle` (see its manifest)."""
    manifest, weights = assets.shipped_weights(TINY_DALLE_NAME, weights_dir)
    vqgan_manifest, _ = assets.shipped_weights(TINY_VQGAN_NAME, weights_dir)
    vqgan_sha256 = vqgan_manifest["files"][vqgan_manifest["weights"]]["sha256"]
    if manifest["vqgan_sha256"] != vqgan_sha256:
        raise MMLessonError(
            f"The shipped DALL-E was trained on the tokens of another {TINY_VQGAN_NAME} than the one "
            "shipped now, so it would draw noise: retrain it (python -m mmlesson train dalle) or reinstall "
            "the package."
        )
    gpt = GPT(GPTConfig(**manifest["config"]))
    gpt.load_state_dict({k: v.float() for k, v in load_file(str(weights)).items()})
    tokenizer = CaptionTokenizer(manifest["tokenizer"]["words"], manifest["tokenizer"]["context_length"])
    return Dalle(gpt.eval(), load_tiny_vqgan(weights_dir).eval(), tokenizer, TINY_DALLE_NAME)
