"""VQGAN: an image as a small grid of tokens, each token the index of an entry in a learned codebook.

The encoder shrinks an image by a factor f (8 for the tiny model: 64x64 pixels -> 8x8 tokens; 16 for the
full one: 256x256 -> 16x16), the quantizer replaces every latent vector by its nearest codebook entry, and
the decoder paints the image back from those entries (Esser, Rombach and Ommer, "Taming Transformers for
High-Resolution Image Synthesis", 2021). Because the grid holds integers, a transformer can model images as
sequences of tokens, as DALL-E 1 does; because the decoder is differentiable, CLIP-guided generation can
optimize the latents directly (lesson 5).

The networks are taming-transformers' own `Encoder`, `Decoder` and `VectorQuantizer2`. Only
`taming.modules.*` is imported: `taming.models.vqgan` imports `taming.main`, which needs a
pytorch-lightning API that Lightning 2 removed, and the training machinery (Lightning, the LPIPS loss with
its downloaded VGG weights) is not needed to run a model.

Pixels inside the model are in [-1, 1] (taming's convention); what the learner passes in and gets back is
in [0, 1] or PIL images.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file
from taming.modules.diffusionmodules.model import Decoder, Encoder
from taming.modules.vqvae.quantize import VectorQuantizer2

from mmlesson import runtime
from mmlesson.checks import check_finite_pixels
from mmlesson.clip import ImageInput
from mmlesson.course import assets, checkpoints
from mmlesson.course.assets import WEIGHTS_DIR
from mmlesson.errors import InputError, MMLessonError
from mmlesson.images import load_image, pil_to_tensor, square

# The names lessons use; see API.md.
__all__ = [
    "VQGAN",
    "load_vqgan",
    "load_tiny_vqgan",
    "load_full_vqgan",
    "to_unit_range",
    "psnr",
]

TINY_VQGAN_NAME = "mmlesson-tiny-vqgan"
FULL_VQGAN_ASSET = "vqgan-imagenet-f16-16384"  # the checkpoint; its config is the "-config" asset
# How many images one encoder or decoder pass takes. On a GPU, memory sets the limit: it goes to the feature
# maps at full resolution, resolution**2 x ch floats per image each: 32 MB for the full profile's f16 model
# (256 px, 128 channels), 0.5 MB for the tiny one (64 px, 32 channels). A budget of 256 MB per map keeps a
# full-profile pass at 8 images, within a free Colab T4.
FEATURE_MAP_BUDGET = 256 * 2**20
# On a CPU, speed sets it: maps that outgrow the processor's caches are read from main memory at every layer.
# The tiny VQGAN on one thread decodes an image in 17 ms 16 at a time (8 MB maps) and in 44 ms 512 at a time.
CPU_FEATURE_MAP_BUDGET = 8 * 2**20


def tiny_vqgan_config() -> dict:
    """The tiny VQGAN: 64x64 Shapes images -> 8x8 tokens from a codebook of 512 entries.

    32 channels is the least taming's GroupNorm (32 groups) allows; three downsamplings give f = 8.
    """
    return {
        "embed_dim": 64,
        "n_embed": 512,
        "ddconfig": {
            "double_z": False,
            "z_channels": 64,
            "resolution": 64,
            "in_channels": 3,
            "out_ch": 3,
            "ch": 32,
            "ch_mult": [1, 1, 2, 2],
            "num_res_blocks": 1,
            "attn_resolutions": [],
            "dropout": 0.0,
        },
    }


class VQGAN(torch.nn.Module):
    """Encoder -> quant_conv -> codebook -> post_quant_conv -> decoder, with taming's parameter names.

    The names (`encoder.`, `decoder.`, `quantize.`, `quant_conv.`, `post_quant_conv.`) match taming's
    `VQModel`, so the published checkpoints load unchanged.
    """

    def __init__(self, config: dict, name: str = "vqgan") -> None:
        super().__init__()
        dd = config["ddconfig"]
        self.config = config
        self.name = name
        self.encoder = Encoder(**dd)
        with contextlib.redirect_stdout(io.StringIO()):  # taming's Decoder prints its latent shape
            self.decoder = Decoder(**dd)
        # legacy=False: the commitment weight beta multiplies the encoder's term, as in the VQ-VAE paper
        # (taming's default keeps a historical mix-up of the two terms for old checkpoints).
        self.quantize = VectorQuantizer2(config["n_embed"], config["embed_dim"], beta=0.25, legacy=False)
        self.quant_conv = torch.nn.Conv2d(dd["z_channels"], config["embed_dim"], 1)
        self.post_quant_conv = torch.nn.Conv2d(config["embed_dim"], dd["z_channels"], 1)

    def __repr__(self) -> str:
        return (
            f"VQGAN(name={self.name!r}, {self.resolution}x{self.resolution} px -> {self.grid}x{self.grid} "
            f"tokens, codebook {self.codebook_size} x {self.config['embed_dim']})"
        )

    @property
    def factor(self) -> int:
        """How many pixels one token covers along each side."""
        return 2 ** (len(self.config["ddconfig"]["ch_mult"]) - 1)

    @property
    def resolution(self) -> int:
        """The image size the model was trained on."""
        return self.config["ddconfig"]["resolution"]

    @property
    def grid(self) -> int:
        return self.resolution // self.factor

    @property
    def codebook_size(self) -> int:
        return self.config["n_embed"]

    @property
    def images_per_pass(self) -> int:
        """How many images `encode` and `decode` send through the network at once (FEATURE_MAP_BUDGET on a
        GPU, CPU_FEATURE_MAP_BUDGET on the CPU)."""
        budget = CPU_FEATURE_MAP_BUDGET if self.device.type == "cpu" else FEATURE_MAP_BUDGET
        feature_map_bytes = self.resolution**2 * self.config["ddconfig"]["ch"] * 4
        return max(1, budget // feature_map_bytes)

    @property
    def codebook(self) -> torch.Tensor:
        """The learned entries [n_embed, embed_dim]."""
        return self.quantize.embedding.weight

    @property
    def device(self) -> torch.device:
        return self.codebook.device

    # -- the calls lessons use -------------------------------------------------------------------------

    def encode(self, images: ImageInput | Sequence[ImageInput] | torch.Tensor) -> torch.Tensor:
        """Token indices [N, h, w] (long) of images: PIL images, paths, arrays, or a tensor [N, 3, H, W]
        in [0, 1]. Images are resized to the model's resolution; see `pixels` for the details."""
        with torch.no_grad():
            batches = self.pixels(images).split(self.images_per_pass)
            return torch.cat([self.quantize_latents(self.encode_latents(batch))[1] for batch in batches])

    def decode(self, indices: torch.Tensor) -> torch.Tensor:
        """Images [N, 3, H, W] in [0, 1] painted from token indices [N, h, w] (or one grid [h, w])."""
        batches = self.check_indices(indices).split(self.images_per_pass)
        with torch.no_grad():
            return torch.cat(
                [to_unit_range(self.decode_latents(self.latents_from_indices(grids))) for grids in batches]
            )

    def reconstruct(self, images: ImageInput | Sequence[ImageInput] | torch.Tensor) -> torch.Tensor:
        """Encode then decode: what survives the trip through the codebook, in [0, 1]."""
        return self.decode(self.encode(images))

    # -- the latent-level calls of guided generation ---------------------------------------------------

    def encode_latents(self, pixels: torch.Tensor) -> torch.Tensor:
        """Continuous latents [N, embed_dim, h, w] of pixels in [-1, 1], before quantization."""
        return self.quant_conv(self.encoder(pixels))

    def quantize_latents(self, latents: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(quantized latents, indices [N, h, w], codebook + commitment loss).

        The quantized latents carry a straight-through gradient: forward they are the codebook entries,
        backward the gradient passes to `latents` as if quantization were the identity.
        """
        quantized, loss, (_, _, indices) = self.quantize(latents)
        return quantized, indices.view(latents.shape[0], *latents.shape[2:]), loss

    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Pixels in [-1, 1] painted from latents [N, embed_dim, h, w], quantized or not."""
        return self.decoder(self.post_quant_conv(latents))

    def latents_from_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """The codebook entries of a token grid, as latents [N, embed_dim, h, w]."""
        return self.codebook[indices.to(self.device)].permute(0, 3, 1, 2).contiguous()

    def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Training pass: (reconstruction in [-1, 1], codebook loss, indices)."""
        quantized, indices, loss = self.quantize_latents(self.encode_latents(pixels))
        return self.decode_latents(quantized), loss, indices

    # -- input checks ----------------------------------------------------------------------------------

    def pixels(
        self, images: ImageInput | Sequence[ImageInput] | torch.Tensor, size: int | None = None
    ) -> torch.Tensor:
        """Images as the model's input: [N, 3, S, S] in [-1, 1] on the model's device.

        PIL images, paths and arrays (any mode: grayscale and RGBA become RGB) are resized so the shorter
        side is `size` (default: the model's resolution) and center-cropped. A tensor [N, 3, H, W] in [0, 1]
        is taken as it is; if H or W is not a multiple of the factor, it is padded at the right and bottom
        (with a warning), because the encoder halves the size `log2(factor)` times.
        """
        size = self.check_size(size or self.resolution)
        if isinstance(images, torch.Tensor):
            pixels = _padded(_check_unit_tensor(images), self.factor)
        else:
            items = [images] if isinstance(images, ImageInput) else list(images)
            if not items:
                raise InputError("no images given: pass at least one image")
            pixels = pil_to_tensor([square(load_image(item, resize_to=size), size) for item in items])
        return (pixels * 2 - 1).to(self.device)

    def check_size(self, size: int) -> int:
        """`size`, rounded down to a multiple of the factor (with a warning) if it is not one."""
        if size % self.factor:
            rounded = max(self.factor, size // self.factor * self.factor)
            warnings.warn(
                f"size {size} is not a multiple of the downsampling factor {self.factor}; using {rounded}",
                stacklevel=3,
            )
            return rounded
        return size

    def check_indices(self, indices: torch.Tensor) -> torch.Tensor:
        """Token grids as a long tensor [N, h, w] (a grid [h, w] gets N = 1), or an error naming the range."""
        indices = torch.as_tensor(indices)
        if indices.ndim == 2:
            indices = indices.unsqueeze(0)
        if indices.ndim != 3 or indices.is_floating_point() or indices.is_complex():
            raise InputError(
                f"token indices must be an integer tensor [N, h, w] or [h, w]; got {indices.dtype} "
                f"{tuple(indices.shape)}"
            )
        if indices.numel() and (indices.min() < 0 or indices.max() >= self.codebook_size):
            raise InputError(
                f"token indices must be in 0..{self.codebook_size - 1} (this codebook's size); got values "
                f"from {int(indices.min())} to {int(indices.max())}"
            )
        return indices.long()


def to_unit_range(pixels: torch.Tensor) -> torch.Tensor:
    """Model pixels in [-1, 1] -> [0, 1], clamped (a decoder may overshoot a little)."""
    return ((pixels + 1) / 2).clamp(0, 1)


def psnr(original: torch.Tensor, reconstruction: torch.Tensor) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB of each image pair [N, 3, H, W] in [0, 1]: 10 log10(1 / MSE)."""
    mse = (original - reconstruction).square().flatten(1).mean(dim=1)
    return 10 * torch.log10(1 / mse.clamp_min(1e-10))


def _check_unit_tensor(pixels: torch.Tensor) -> torch.Tensor:
    pixels = pixels.unsqueeze(0) if pixels.ndim == 3 else pixels
    if pixels.ndim != 4 or pixels.shape[1] != 3 or not pixels.is_floating_point():
        raise InputError(
            f"a tensor of images must be float [N, 3, H, W] in [0, 1]; got {pixels.dtype} "
            f"{tuple(pixels.shape)}. Pass PIL images or paths instead."
        )
    if len(pixels) == 0:
        raise InputError("no images given: the tensor is empty")
    check_finite_pixels(pixels, "the tensor of images")
    if pixels.min() < -1e-3 or pixels.max() > 1 + 1e-3:
        raise InputError(
            f"a tensor of images must hold values in [0, 1]; got {float(pixels.min()):.2f} to "
            f"{float(pixels.max()):.2f} (for [-1, 1] pixels use encode_latents directly)"
        )
    return pixels.float()


def _padded(pixels: torch.Tensor, factor: int) -> torch.Tensor:
    height, width = pixels.shape[-2:]
    pad_h, pad_w = -height % factor, -width % factor
    if pad_h or pad_w:
        warnings.warn(
            f"images of {height}x{width} pixels are not a multiple of the factor {factor}: padded to "
            f"{height + pad_h}x{width + pad_w} (edge pixels repeated)",
            stacklevel=4,
        )
        pixels = F.pad(pixels, (0, pad_w, 0, pad_h), mode="replicate")
    return pixels


# -- loading ---------------------------------------------------------------------------------------------


def load_vqgan(profile: str | None = None, device: str | torch.device | None = None) -> VQGAN:
    """The VQGAN of a profile: `tiny` (shipped with the course) or `full` (ImageNet f16-16384)."""
    profile, target = runtime.profile_and_device(profile, device)
    model = load_tiny_vqgan() if profile == "tiny" else load_full_vqgan()
    return model.to(target).eval()


def load_tiny_vqgan(weights_dir: Path = WEIGHTS_DIR) -> VQGAN:
    """The shipped tiny VQGAN, trained by `python -m mmlesson train vqgan` (see its manifest)."""
    manifest, weights = assets.shipped_weights(TINY_VQGAN_NAME, weights_dir)
    model = VQGAN(manifest["config"], TINY_VQGAN_NAME)
    model.load_state_dict({k: v.float() for k, v in load_file(str(weights)).items()})
    return model


def load_full_vqgan() -> VQGAN:
    """ImageNet f16-16384 with its official config, both fetched (pinned sha256) by `mmlesson.course.assets`.

    The published checkpoint is a pickle. `mmlesson.course.checkpoints` reads it once, from the very bytes
    whose hash it checked, and rebuilds tensors and nothing else; the weights are then kept as a safetensors
    copy in the cache, so later loads never unpickle.
    """
    config = _official_config(assets.fetch(f"{FULL_VQGAN_ASSET}-config"))
    model = VQGAN(config, FULL_VQGAN_ASSET)
    model.load_state_dict(_cached_weights(FULL_VQGAN_ASSET))
    return model


def _official_config(path: Path) -> dict:
    """The model part of taming's YAML config: embed_dim, n_embed and the encoder/decoder's ddconfig."""
    import yaml

    params = yaml.safe_load(path.read_text(encoding="utf-8"))["model"]["params"]
    return {key: params[key] for key in ("embed_dim", "n_embed", "ddconfig")}


def _cached_weights(name: str) -> dict[str, torch.Tensor]:
    """The model weights of a checkpoint asset, from its safetensors copy, made on first use."""
    asset = assets.get(name)
    copy = assets.local_path(name).with_suffix(".safetensors")
    record = copy.with_suffix(".json")
    if copy.is_file() and record.is_file():
        expected = json.loads(record.read_text(encoding="utf-8"))
        if expected.get("source_sha256") == asset.sha256 and assets.matches(copy, expected.get("sha256", "")):
            return load_file(str(copy))
    state = model_state_dict(assets.fetch(name), asset.sha256)
    if assets.write_problem(copy.parent) is None:  # a participant's read-only shared cache keeps no copy
        _write_safetensors_copy(state, copy, {"source_sha256": asset.sha256})
    return state


def model_state_dict(checkpoint: Path, sha256: str) -> dict[str, torch.Tensor]:
    """The VQGAN weights of a taming (PyTorch Lightning) checkpoint whose sha256 is `sha256`, without its
    training-only parts.

    `checkpoints.load_checkpoint` checks the hash and reads the `state_dict` without running anything in
    the file. Its `loss.` entries are the discriminator and LPIPS network used in training, dropped here.
    """
    state = checkpoints.load_checkpoint(checkpoint, sha256)
    if not any(key.startswith("quantize.") for key in state):
        raise MMLessonError(f"{checkpoint.name} holds no VQGAN state_dict (no 'quantize.' weights).")
    return {key: value for key, value in state.items() if not key.startswith("loss.")}


def _write_safetensors_copy(state: dict[str, torch.Tensor], path: Path, record: dict) -> None:
    """Write the weights and a record of their hash, each to a temporary file renamed when complete."""
    with assets.written_atomically(path) as temporary:
        save_file({k: v.contiguous() for k, v in state.items()}, str(temporary))
    record = {**record, "sha256": assets.sha256_of(path)}
    with assets.written_atomically(path.with_suffix(".json")) as temporary:
        temporary.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
