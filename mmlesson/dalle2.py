"""DALL-E 2 in miniature: a prior turns CLIP's text embedding into an image embedding, and a diffusion
decoder paints a picture from that image embedding.

DALL-E 2 (Ramesh et al., "Hierarchical Text-Conditional Image Generation with CLIP Latents", 2022) never
trains on captions and pixels together. A frozen CLIP embeds both; the **decoder** learns to draw an image
from its CLIP image embedding, and the **prior** learns which image embedding goes with a text embedding.
Both are diffusion models (`mmlesson.diffusion`). This module is that design at the size of the course:

- CLIP: the shipped tiny CLIP (128-dimensional embeddings), frozen;
- the decoder: diffusion in the tiny VQGAN's latent grid (8x8 cells of 64 numbers), as latent diffusion
  (Stable Diffusion) does, not in pixels, and there in the latents' 12 principal directions, each scaled to
  unit variance (`DecoderConfig` says why): 768 numbers per picture instead of 12,288, so it trains and
  samples on a CPU. Its network is a small transformer over 2x2 squares of cells whose layer norms are
  scaled and shifted by the step and the image embedding (adaLN, as in DiT); it predicts the clean latents,
  not the noise (lesson 7 says why). The finished latents are snapped to the VQGAN's codebook and painted
  by its decoder;
- the prior: the least-squares linear map of lesson 5 (the default: it measured better) or a diffusion
  prior, a small MLP over image embeddings conditioned on the text embedding (DALL-E 2's is a transformer);
- classifier-free guidance for both: the condition is hidden for a tenth of the training steps.

    >>> dalle2 = load_dalle2("tiny")
    >>> images = dalle2.generate("a large red circle on the left", n=4, seed=0)   # four 64x64 PIL images
    >>> similar = dalle2.variations(images[0], n=4)                                # the same idea, redrawn

The shipped weights are trained by `python -m mmlesson.train_dalle2`, which also measures them (see its
manifest). Only the tiny profile exists: OpenAI never published DALL-E 2's weights.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from PIL import Image
from safetensors.torch import load_file
from torch import nn

from mmlesson import runtime
from mmlesson.checks import check_int, check_seed
from mmlesson.clip import ClipBundle, ImageInput, OutOfMemoryAdvice, load_tiny_clip
from mmlesson.course import assets
from mmlesson.course.assets import WEIGHTS_DIR
from mmlesson.diffusion import NoiseSchedule, check_guidance_scale, ddim_sample, noise_from_clean
from mmlesson.errors import InputError, MMLessonError
from mmlesson.images import load_image, tensor_to_pil
from mmlesson.vqgan import VQGAN, load_tiny_vqgan

# The names lessons use; see API.md.
__all__ = [
    "TINY_DALLE2_NAME",
    "PRIORS",
    "DEFAULT_PRIOR",
    "DecoderConfig",
    "LatentDenoiser",
    "PriorConfig",
    "PriorDenoiser",
    "LinearPrior",
    "Dalle2",
    "load_dalle2",
    "load_tiny_dalle2",
]

TINY_DALLE2_NAME = "mmlesson-tiny-dalle2"
PRIORS = ("diffusion", "linear", "none")  # "none": decode the text embedding itself (the paper's ablation)
# The prior generate uses: the linear one met every bar and beat the diffusion prior on color and shape (both
# place every picture right; the manifest's metrics, and lesson 7), most on held-out pairs; the diffusion
# prior stays for lesson 7 to compare.
DEFAULT_PRIOR = "linear"
GUIDANCE_SCALE = 3.0  # the decoder's default; lesson 7 sweeps it
PRIOR_GUIDANCE_SCALE = 1.0  # the diffusion prior's
SAMPLING_STEPS = 25  # DDIM steps per sample, for the decoder and the diffusion prior alike
MAX_IMAGES_PER_CAPTION = 1000  # as DALL-E 1's: more is a loop over seeds that saves each batch
SAMPLES_PER_BATCH = 256  # images denoised at once (twice that many rows with guidance)


def timestep_embedding(t: torch.Tensor, width: int) -> torch.Tensor:
    """The step number as `width` sines and cosines of geometrically spaced frequencies (as in the
    Transformer's positions), so that nearby steps get nearby vectors."""
    half = width // 2
    frequencies = torch.exp(-math.log(10_000) * torch.arange(half, device=t.device) / half)
    angles = t.float()[:, None] * frequencies[None]
    return torch.cat([angles.sin(), angles.cos()], dim=1)


class Conditioning(nn.Module):
    """One vector per row from the step and the condition; rows with keep=False get a learned "no
    condition" vector instead (what classifier-free guidance contrasts the condition with)."""

    def __init__(self, condition_dim: int, width: int) -> None:
        super().__init__()
        self.width = width
        self.time = nn.Sequential(nn.Linear(width, width), nn.SiLU(), nn.Linear(width, width))
        self.condition = nn.Linear(condition_dim, width)
        self.nothing = nn.Parameter(torch.zeros(width))

    def forward(self, t: torch.Tensor, condition: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        given = torch.where(keep[:, None], self.condition(condition), self.nothing)
        return self.time(timestep_embedding(t, self.width)) + given


# -- the decoder: a transformer over the VQGAN's latent grid ----------------------------------------------


@dataclass(frozen=True)
class DecoderConfig:
    """The decoder's shape: it denoises the VQGAN's latents [channels, grid, grid] in their `components`
    principal directions, conditioned on `embed_dim`-wide embeddings."""

    channels: int = 64
    grid: int = 8
    # The VQGAN's latents of Shapes pictures lie almost in a plane: one direction holds 95% of their variance,
    # two 99.6%. Diffused as they are, the directions that tell one codebook entry from another would be a
    # whisper under the noise; so the decoder works in the 12 principal directions, each scaled to unit
    # variance (the manifest's snapping_agreement: the share of cells that still snap to the same entry).
    components: int = 12
    # Cells per token along each side (DiT's patches). A token must be at least as wide as the numbers it
    # holds (patch^2 x components = 48 <= width), or the noise it cannot represent stays unexplained.
    patch: int = 2
    embed_dim: int = 128
    width: int = 128
    layers: int = 4
    heads: int = 4


class AdaLNBlock(nn.Module):
    """A transformer block whose layer norms take their scale and shift (and a gate on each branch) from the
    conditioning vector: DiT's adaLN-Zero (Peebles & Xie, 2023). The gates start at zero, so each block
    starts as the identity and training grows it."""

    def __init__(self, width: int, heads: int) -> None:
        super().__init__()
        self.norm_1 = nn.LayerNorm(width, elementwise_affine=False)
        self.attn = nn.MultiheadAttention(width, heads, batch_first=True)
        self.norm_2 = nn.LayerNorm(width, elementwise_affine=False)
        self.mlp = nn.Sequential(nn.Linear(width, 4 * width), nn.GELU(), nn.Linear(4 * width, width))
        self.modulation = nn.Linear(width, 6 * width)
        nn.init.zeros_(self.modulation.weight)
        nn.init.zeros_(self.modulation.bias)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift_1, scale_1, gate_1, shift_2, scale_2, gate_2 = self.modulation(F.silu(c))[:, None].chunk(6, -1)
        h = self.norm_1(x) * (1 + scale_1) + shift_1
        x = x + gate_1 * self.attn(h, h, h, need_weights=False)[0]
        h = self.norm_2(x) * (1 + scale_2) + shift_2
        return x + gate_2 * self.mlp(h)


class LatentDenoiser(nn.Module):
    """Predicts the clean normalized latents [B, components, grid, grid] from noisy ones at step t, given CLIP
    image embeddings (trained with target="clean"; lesson 7 measures why not the noise).

    Each patch x patch square of grid cells is one token, its numbers projected, with a learned position
    embedding: where a shape sits is a matter of which tokens hold it. The buffers, set by
    `fit_latent_space`, hold the latents' mean, principal directions and their spreads (`normalize`), and
    `bound`, how far the normalized training latents go, where the sampler clamps its estimates.
    """

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        tokens, patch_size = (config.grid // config.patch) ** 2, config.components * config.patch**2
        self.register_buffer("latent_mean", torch.zeros(config.channels))
        self.register_buffer("directions", torch.eye(config.components, config.channels))
        self.register_buffer("spreads", torch.ones(config.components))
        self.register_buffer("bound", torch.tensor(3.0))
        self.embed = nn.Linear(patch_size, config.width)
        self.positions = nn.Parameter(torch.randn(tokens, config.width) * 0.02)
        self.conditioning = Conditioning(config.embed_dim, config.width)
        self.blocks = nn.ModuleList(AdaLNBlock(config.width, config.heads) for _ in range(config.layers))
        self.norm = nn.LayerNorm(config.width, elementwise_affine=False)
        self.out = nn.Linear(config.width, patch_size)
        nn.init.zeros_(self.out.weight)  # predicts zero noise at first
        nn.init.zeros_(self.out.bias)

    def __repr__(self) -> str:
        c = self.config
        return (
            f"LatentDenoiser({c.layers} adaLN blocks, width {c.width}, over {c.grid}x{c.grid} latent cells "
            f"in {c.components} principal directions, {c.patch}x{c.patch} cells a token, conditioned on "
            f"{c.embed_dim}-d embeddings, {self.n_params() / 1e6:.2f}M parameters)"
        )

    def n_params(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, embedding: torch.Tensor, keep: torch.Tensor
    ) -> torch.Tensor:
        tokens = self.embed(self.to_patches(x)) + self.positions  # [B, tokens, width]
        c = self.conditioning(t, embedding, keep)
        for block in self.blocks:
            tokens = block(tokens, c)
        return self.from_patches(self.out(self.norm(tokens)))

    def to_patches(self, x: torch.Tensor) -> torch.Tensor:
        """[B, K, G, G] -> [B, (G/p)^2, K*p*p]: each p x p square of cells as one row, row by row."""
        p = self.config.patch
        patches = F.unfold(x, kernel_size=p, stride=p)  # [B, K*p*p, tokens]
        return patches.transpose(1, 2)

    def from_patches(self, patches: torch.Tensor) -> torch.Tensor:
        """The inverse of `to_patches`."""
        c = self.config
        return F.fold(patches.transpose(1, 2), (c.grid, c.grid), kernel_size=c.patch, stride=c.patch)

    def fit_latent_space(self, latents: torch.Tensor, sample: int = 50_000) -> None:
        """Set the buffers from training latents [N, channels, G, G]: their mean, their principal directions
        (from up to `sample` cells), the spread along each, and the bound (the 99.99th percentile of the
        normalized values: the rarest cells aside, how far the data goes)."""
        cells = latents.permute(0, 2, 3, 1).reshape(-1, self.config.channels)
        self.latent_mean.copy_(cells.mean(dim=0))
        every = max(1, len(cells) // sample)
        _, _, directions = torch.linalg.svd(cells[::every] - self.latent_mean, full_matrices=False)
        self.directions.copy_(directions[: self.config.components])
        self.spreads.copy_(((cells - self.latent_mean) @ self.directions.T).std(dim=0))
        normalized = self.normalize(latents[: sample // self.config.grid**2]).abs().flatten()
        self.bound.copy_(normalized.kthvalue(int(0.9999 * len(normalized))).values)

    def normalize(self, latents: torch.Tensor) -> torch.Tensor:
        """VQGAN latents [B, channels, G, G] -> [B, components, G, G], each about unit variance."""
        centred = latents - self.latent_mean[:, None, None]
        return torch.einsum("bchw,kc->bkhw", centred, self.directions) / self.spreads[:, None, None]

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """The inverse of `normalize` (up to the directions left out)."""
        scaled = x * self.spreads[:, None, None]
        return torch.einsum("bkhw,kc->bchw", scaled, self.directions) + self.latent_mean[:, None, None]


# -- the priors: text embedding -> image embedding ---------------------------------------------------------


@dataclass(frozen=True)
class PriorConfig:
    """The diffusion prior's shape: `layers` residual MLP blocks of `width` over `embed_dim`-d embeddings."""

    embed_dim: int = 128
    width: int = 256
    layers: int = 4


class PriorDenoiser(nn.Module):
    """Predicts clean (scaled) image embeddings [B, embed_dim] from noisy ones at step t, given text
    embeddings (DALL-E 2's prior, too, predicts the clean embedding rather than the noise).

    An MLP of residual blocks, each adding the conditioning vector (step + text) before its layers.
    Embeddings are unit vectors, so each of their 128 numbers is about 0.09 in size; they are scaled by
    sqrt(embed_dim) to about unit variance before noise is added (`EMBEDDING_SCALE`).
    """

    def __init__(self, config: PriorConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("bound", torch.tensor(3.0))  # the largest |value| of scaled training embeddings
        self.embed = nn.Linear(config.embed_dim, config.width)
        self.conditioning = Conditioning(config.embed_dim, config.width)
        self.blocks = nn.ModuleList(
            nn.Sequential(
                nn.LayerNorm(config.width),
                nn.Linear(config.width, config.width),
                nn.SiLU(),
                nn.Linear(config.width, config.width),
            )
            for _ in range(config.layers)
        )
        self.out = nn.Sequential(nn.LayerNorm(config.width), nn.Linear(config.width, config.embed_dim))

    def __repr__(self) -> str:
        c = self.config
        return (
            f"PriorDenoiser({c.layers} residual MLP blocks, width {c.width}, over {c.embed_dim}-d "
            f"embeddings, {sum(p.numel() for p in self.parameters()) / 1e6:.2f}M parameters)"
        )

    def forward(
        self, x: torch.Tensor, t: torch.Tensor, text: torch.Tensor, keep: torch.Tensor
    ) -> torch.Tensor:
        h = self.embed(x)
        c = self.conditioning(t, text, keep)
        for block in self.blocks:
            h = h + block(h + c)
        return self.out(h)

    @staticmethod
    def embedding_scale(embed_dim: int) -> float:
        return math.sqrt(embed_dim)


class LinearPrior(nn.Module):
    """Lesson 5's prior: the matrix that best maps text embeddings to image embeddings (least squares)."""

    def __init__(self, embed_dim: int) -> None:
        super().__init__()
        self.register_buffer("matrix", torch.eye(embed_dim))

    @classmethod
    def fit(cls, text: torch.Tensor, image: torch.Tensor) -> LinearPrior:
        prior = cls(text.shape[1])
        prior.matrix.copy_(torch.linalg.lstsq(text, image).solution)
        return prior

    def forward(self, text: torch.Tensor) -> torch.Tensor:
        return F.normalize(text @ self.matrix, dim=-1)


# -- DALL-E 2: CLIP, a prior, the decoder and the VQGAN together --------------------------------------------


class Dalle2:
    """Caption -> CLIP text embedding -> prior -> image embedding -> decoder -> VQGAN latents -> pixels."""

    def __init__(
        self,
        clip: ClipBundle,
        vqgan: VQGAN,
        decoder: LatentDenoiser,
        diffusion_prior: PriorDenoiser,
        linear_prior: LinearPrior,
        name: str = "dalle2",
    ) -> None:
        self.clip, self.vqgan, self.decoder, self.name = clip, vqgan, decoder, name
        self.diffusion_prior, self.linear_prior = diffusion_prior, linear_prior
        self.schedule = NoiseSchedule.cosine()

    def __repr__(self) -> str:
        return f"Dalle2(name={self.name!r}, {self.decoder!r}, {self.diffusion_prior!r})"

    @property
    def device(self) -> torch.device:
        return self.vqgan.device

    def trained_parts(self) -> dict[str, nn.Module]:
        """The modules trained for DALL-E 2 here (CLIP and the VQGAN come trained and stay frozen)."""
        return {
            "decoder": self.decoder,
            "diffusion_prior": self.diffusion_prior,
            "linear_prior": self.linear_prior,
        }

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The trained parts' weights under one set of names ("decoder.blocks.0...."), as shipped."""
        return {
            f"{prefix}.{key}": value
            for prefix, module in self.trained_parts().items()
            for key, value in module.state_dict().items()
        }

    # -- the two halves ----------------------------------------------------------------------------------

    def text_embeddings(self, captions: str | Sequence[str]) -> torch.Tensor:
        """CLIP text embeddings [N, D] of captions in the Shapes world's words (others are refused)."""
        if not isinstance(captions, (str, list, tuple)):
            raise InputError(
                f"a caption must be a string (or a list of strings), got {type(captions).__name__}: "
                f"{captions!r}"
            )
        captions = [captions] if isinstance(captions, str) else list(captions)
        if not captions:
            raise InputError("no captions given: pass a caption or a list with at least one")
        for caption in captions:
            _check_caption(self.clip, caption)
        return self.clip.encode_texts(captions).to(self.device)

    def image_embeddings(
        self,
        text: torch.Tensor,
        prior: str = DEFAULT_PRIOR,
        generator: torch.Generator | None = None,
        steps: int = SAMPLING_STEPS,
        guidance_scale: float = PRIOR_GUIDANCE_SCALE,
    ) -> torch.Tensor:
        """Image embeddings [N, D] for text embeddings [N, D]: sampled by the diffusion prior, mapped by the
        linear one, or the text embeddings themselves (prior="none")."""
        if prior not in PRIORS:
            raise InputError(f"prior must be one of {', '.join(PRIORS)}, got {prior!r}")
        if prior == "none":
            return text
        if prior == "linear":
            return self.linear_prior(text)
        scale = PriorDenoiser.embedding_scale(text.shape[1])
        prior = self.diffusion_prior
        sample = ddim_sample(
            noise_from_clean(prior, self.schedule),
            text,
            text.shape[1:],
            self.schedule,
            steps,
            guidance_scale,
            generator,
            prior.bound.item(),
        )
        return F.normalize(sample / scale, dim=-1)

    def decode(
        self,
        embeddings: torch.Tensor,
        generator: torch.Generator | None = None,
        steps: int = SAMPLING_STEPS,
        guidance_scale: float = GUIDANCE_SCALE,
    ) -> list[Image.Image]:
        """One 64x64 image per CLIP image embedding [N, D]: the decoder's latents, snapped to the
        codebook, painted by the VQGAN."""
        c = self.decoder.config
        with torch.no_grad():
            x = ddim_sample(
                noise_from_clean(self.decoder, self.schedule),
                embeddings.to(self.device),
                (c.components, c.grid, c.grid),
                self.schedule,
                steps,
                guidance_scale,
                generator,
                self.decoder.bound.item(),
            )
            _, codes, _ = self.vqgan.quantize_latents(self.decoder.denormalize(x))
        return tensor_to_pil(self.vqgan.decode(codes))

    # -- what lessons call ---------------------------------------------------------------------------------

    def generate(
        self,
        caption: str | Sequence[str],
        n: int = 1,
        seed: int = 0,
        guidance_scale: float = GUIDANCE_SCALE,
        steps: int = SAMPLING_STEPS,
        prior: str = DEFAULT_PRIOR,
    ) -> list[Image.Image]:
        """n images (64x64 PIL) per caption, in order, the same for the same seed.

        guidance_scale (0 to 50; 1 = plain conditional sampling) is the decoder's classifier-free guidance;
        steps (1 to 1000) the DDIM steps of the decoder and of the diffusion prior; prior one of `PRIORS`.
        """
        _check_count(n)
        check_guidance_scale(guidance_scale)
        check_int(steps, "steps", 1, self.schedule.steps, means=": the number of denoising steps per sample")
        generator = torch.Generator().manual_seed(check_seed(seed))
        text = self.text_embeddings(caption).repeat_interleave(n, dim=0)
        return self._batched(
            text,
            lambda t: self.decode(
                self.image_embeddings(t, prior, generator, steps), generator, steps, guidance_scale
            ),
        )

    def variations(
        self,
        image: ImageInput,
        n: int = 4,
        seed: int = 0,
        guidance_scale: float = GUIDANCE_SCALE,
        steps: int = SAMPLING_STEPS,
    ) -> list[Image.Image]:
        """n new images drawn from one image's CLIP embedding: what CLIP keeps of it (color, shape, place,
        size) stays, what it ignores varies. Any image mode or size is accepted (resized as CLIP does)."""
        _check_count(n)
        check_guidance_scale(guidance_scale)
        check_int(steps, "steps", 1, self.schedule.steps, means=": the number of denoising steps per sample")
        generator = torch.Generator().manual_seed(check_seed(seed))
        embedding = self.clip.encode_images([load_image(image)]).to(self.device)
        return self._batched(
            embedding.repeat(n, 1), lambda e: self.decode(e, generator, steps, guidance_scale)
        )

    def _batched(self, rows: torch.Tensor, draw) -> list[Image.Image]:
        """draw(rows) `SAMPLES_PER_BATCH` rows at a time, with a GPU's out-of-memory error explained."""
        with OutOfMemoryAdvice(
            f"sampling {min(len(rows), SAMPLES_PER_BATCH)} images at once: ask for fewer (n) or use "
            "device='cpu'"
        ):
            return [
                image
                for start in range(0, len(rows), SAMPLES_PER_BATCH)
                for image in draw(rows[start : start + SAMPLES_PER_BATCH])
            ]

    def to(self, device: str | torch.device) -> Dalle2:
        for module in (self.vqgan, self.decoder, self.diffusion_prior, self.linear_prior):
            module.to(device)
        return self


def _check_caption(clip: ClipBundle, caption: object) -> None:
    if not isinstance(caption, str):
        raise InputError(f"a caption must be a string, got {type(caption).__name__}: {caption!r}")
    if not caption.strip():
        raise InputError(
            f"the caption {caption!r} is empty: describe one object, e.g. 'a large red circle on the left'"
        )
    unknown = clip.tokenizer.unknown_words(caption)
    if unknown:
        raise InputError(
            f"the caption {caption!r} uses words the tiny CLIP never saw: {', '.join(sorted(set(unknown)))}. "
            "It knows only the Shapes-world words (mmlesson.data.COLORS, SHAPES, SIZES, POSITIONS and words "
            "like 'a', 'on', 'the')"
        )


def _check_count(n: int) -> None:
    check_int(n, "n", means=": the number of images per caption")
    if n > MAX_IMAGES_PER_CAPTION:
        raise InputError(
            f"n={n} images per caption is more than one call makes (at most {MAX_IMAGES_PER_CAPTION}): call "
            "generate in a loop with seed=0, 1, 2, ... and save each batch of images before the next"
        )


# -- loading ------------------------------------------------------------------------------------------------


def load_dalle2(profile: str | None = "tiny", device: str | torch.device | None = None) -> Dalle2:
    """The course's DALL-E 2: the tiny profile only (None means tiny too); `device="cuda"` for a GPU."""
    if profile == "full":
        raise MMLessonError(
            "DALL-E 2 exists in the tiny profile only: OpenAI never published its weights, and no open "
            "re-implementation fits the course's full profile. To try a large one, see lucidrains' "
            "DALLE2-pytorch, LAION's trained prior, or Kakao Brain's Karlo (a DALL-E 2-style model with "
            "public weights, in Hugging Face diffusers as UnCLIPPipeline). Use load_dalle2(profile='tiny')."
        )
    _, target = runtime.profile_and_device(profile or "tiny", device)
    return load_tiny_dalle2().to(target)


def load_tiny_dalle2(weights_dir: Path = WEIGHTS_DIR) -> Dalle2:
    """The shipped tiny DALL-E 2, trained by `python -m mmlesson.train_dalle2` (see its manifest)."""
    manifest, weights = assets.shipped_weights(TINY_DALLE2_NAME, weights_dir)
    for name, recorded in manifest["trained_on"].items():
        shipped, _ = assets.shipped_weights(name, weights_dir)
        if shipped["files"][shipped["weights"]]["sha256"] != recorded:
            raise MMLessonError(
                f"The shipped DALL-E 2 was trained with another {name} than the one shipped now, so it would "
                "draw noise: retrain it (python -m mmlesson.train_dalle2) or reinstall the package."
            )
    state = {key: value.float() for key, value in load_file(str(weights)).items()}
    return assemble(
        load_tiny_clip(torch.device("cpu")),
        load_tiny_vqgan(weights_dir).eval(),
        DecoderConfig(**manifest["decoder"]),
        PriorConfig(**manifest["prior"]),
        state,
        TINY_DALLE2_NAME,
    )


def assemble(
    clip: ClipBundle,
    vqgan: VQGAN,
    decoder_config: DecoderConfig,
    prior_config: PriorConfig,
    state: dict[str, torch.Tensor] | None = None,
    name: str = "untrained",
) -> Dalle2:
    """A Dalle2 from its parts; `state` holds the weights as `Dalle2.state_dict` writes them."""
    dalle2 = Dalle2(
        clip,
        vqgan,
        LatentDenoiser(decoder_config),
        PriorDenoiser(prior_config),
        LinearPrior(prior_config.embed_dim),
        name,
    )
    if state is not None:
        for prefix, module in dalle2.trained_parts().items():
            module.load_state_dict(
                {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}
            )
    for module in dalle2.trained_parts().values():
        module.eval()
    return dalle2
