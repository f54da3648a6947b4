"""Rehearse the full profile: run lessons top to bottom on stand-ins of its pretrained weights, offline.

The full profile (open_clip ViT-B-32 laion2b_s34b_b79k and taming's VQGAN ImageNet f16-16384) cannot be
downloaded here, so its lesson branches would otherwise only ever be run by a learner in a workshop. This
script builds random-weight files in the *exact published formats* (the same safetensors keys and shapes;
the same Lightning checkpoint layout with loss weights, optimizer states and a ModelCheckpoint callback;
the published YAML config byte for byte), serves them from 127.0.0.1, points the course at them through
the `MMLESSON_ASSET_OVERRIDES` test hook (see mmlesson/course/asset_overrides.py), and executes copies of the
lessons with MMLESSON_PROFILE=full in a fresh cache, like a learner's first run.

    python scripts/rehearse_full_profile.py            # every lesson in notebooks/
    python scripts/rehearse_full_profile.py 02 04      # lessons 2 and 4
    python scripts/rehearse_full_profile.py 04 --executed /tmp/rehearsed   # keep the executed copies

It prints one row per lesson (pass / fail, seconds, peak RAM of the kernel, peak GPU memory when there is a
GPU) and exits 0 only when no lesson has an error. Random weights give meaningless numbers, so a cell tagged
`quality-check` whose assertion fails is reported as "quality check failed on stand-in weights" and the
lesson goes on; any other exception is an error, and the lesson stops there.

The stand-ins (1.6 GB) are built once into `.rehearsal-cache/` at the repository root and reused while their
hashes match the record beside them; delete the folder to rebuild them.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = ROOT / "notebooks"
CACHE = ROOT / ".rehearsal-cache"
SEED = 0
BUILDER_VERSION = 2  # bump when a stand-in's content changes, so cached copies are rebuilt
QUALITY_TAG = "quality-check"
OVERRIDES_VARIABLE = "MMLESSON_ASSET_OVERRIDES"  # mmlesson.course.asset_overrides.ENV_VAR
MEASURE_MARK = "REHEARSAL-MEASUREMENT "

# The lesson the test suite rehearses, the quickest (lesson 0: seconds, with the stand-ins built and served
# all the same). Lessons 2 and 4, which load the full weights, take minutes each on a CPU: run them here.
CHEAPEST_LESSON = "00"

CLIP_ASSET = "clip-vit-b-32-laion2b"
VQGAN_ASSET = "vqgan-imagenet-f16-16384"
CONFIG_ASSET = "vqgan-imagenet-f16-16384-config"

# The published taming config (heibox .../configs/model.yaml), byte for byte: its sha256 is the one pinned
# in mmlesson/course/assets.py, so the config is served as the real file, and the checkpoint is built from it.
VQGAN_CONFIG_YAML = """\
model:
  base_learning_rate: 4.5e-06
  target: taming.models.vqgan.VQModel
  params:
    embed_dim: 256
    n_embed: 16384
    monitor: val/rec_loss
    ddconfig:
      double_z: false
      z_channels: 256
      resolution: 256
      in_channels: 3
      out_ch: 3
      ch: 128
      ch_mult:
      - 1
      - 1
      - 2
      - 2
      - 4
      num_res_blocks: 2
      attn_resolutions:
      - 16
      dropout: 0.0
    lossconfig:
      target: taming.modules.losses.vqperceptual.VQLPIPSWithDiscriminator
      params:
        disc_conditional: false
        disc_in_channels: 3
        disc_start: 0
        disc_weight: 0.75
        disc_num_layers: 2
        codebook_weight: 1.0

"""


# -- lessons ---------------------------------------------------------------------------------------------


def available_lessons(folder: Path = NOTEBOOKS) -> dict[str, Path]:
    """{"02": notebooks/02_zero_shot.ipynb, ...}: every lesson notebook, by its two-digit number."""
    return {path.name[:2]: path for path in sorted(folder.glob("[0-9][0-9]_*.ipynb"))}


class UnknownLessonError(ValueError):
    """A lesson number that no notebook has; the message lists those that exist."""


def choose_lessons(requested: list[str], available: dict[str, Path]) -> list[str]:
    """The lesson numbers to run, in the order asked ("4" means "04"); all of them when none is asked."""
    if not requested:
        return list(available)
    chosen = [name.zfill(2) if name.isdigit() else name for name in requested]
    unknown = [name for name in chosen if name not in available]
    if unknown:
        lessons = ", ".join(f"{number} ({path.stem})" for number, path in available.items())
        raise UnknownLessonError(f"No lesson {', '.join(unknown)}. The lessons are: {lessons}.")
    return list(dict.fromkeys(chosen))


# -- stand-ins: the CLIP ---------------------------------------------------------------------------------


def clip_state(
    seed: int = SEED, model_name: str = "ViT-B-32", device: str = "cpu"
) -> dict[str, torch.Tensor]:
    """open_clip's own randomly initialized model: the published file is exactly its state dict (float32).

    On the "meta" device (inside `with torch.device("meta")`) it costs nothing: tests read the real shapes.
    """
    import open_clip

    torch.manual_seed(seed)
    model = open_clip.create_model(model_name, pretrained=None, device=device)
    return {key: value.contiguous() for key, value in model.state_dict().items()}


def write_clip_standin(path: Path, seed: int = SEED, model_name: str = "ViT-B-32") -> None:
    from safetensors.torch import save_file

    save_file(clip_state(seed, model_name), str(path), metadata={"format": "pt"})  # as the published file


# -- stand-ins: the VQGAN checkpoint ---------------------------------------------------------------------


class ModelCheckpoint:
    """Stands in for Lightning's callback class, which the published checkpoint names as a dict key.

    The real file holds `callbacks = {ModelCheckpoint: {...}}`: a reference to the *class* (pickle GLOBAL
    `pytorch_lightning.callbacks.model_checkpoint ModelCheckpoint`), whatever is installed. This class is
    written under that name by `_LightningPickler`, so loading the stand-in meets the same reference.
    """

    PICKLED_AS = ("pytorch_lightning.callbacks.model_checkpoint", "ModelCheckpoint")


class _LightningPickler(
    pickle._Pickler
):  # the pure-Python pickler: the only one whose save_global we can override
    def save_global(self, obj: object, name: str | None = None) -> None:
        if obj is ModelCheckpoint:
            module, qualname = ModelCheckpoint.PICKLED_AS
            self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)


class _LightningPickle:
    """A `pickle_module` for torch.save that writes `ModelCheckpoint` under Lightning's name."""

    Pickler = _LightningPickler
    __name__ = "lightning_pickle"


def vqgan_config(yaml_text: str = VQGAN_CONFIG_YAML) -> dict:
    import yaml

    return yaml.safe_load(yaml_text)


def vqgan_checkpoint(config: dict, seed: int = SEED, global_step: int = 1_225_000) -> dict:
    """What taming's Lightning training saved for `config`, with random weights in every tensor.

    `state_dict` holds the VQModel's weights (encoder, decoder, quantize, quant_conv, post_quant_conv)
    followed in taming's module order by the training loss: LPIPS (`loss.perceptual_loss.*`: VGG16 slices
    and lin layers) and the PatchGAN discriminator (`loss.discriminator.main.*`). The two Adam states (auto-
    encoder, discriminator) hold a moment pair per parameter, which is why the real file is ~980 MB.
    """
    from mmlesson.vqgan import VQGAN

    params = config["model"]["params"]
    torch.manual_seed(seed)
    model = VQGAN({key: params[key] for key in ("embed_dim", "n_embed", "ddconfig")})
    loss = _training_loss(params["lossconfig"]["params"])
    modules = dict(model.named_children())
    state: dict[str, torch.Tensor] = OrderedDict()  # what Lightning's model.state_dict() returned
    for prefix, module in [("encoder", modules["encoder"]), ("decoder", modules["decoder"]), ("loss", loss)]:
        state.update({f"{prefix}.{key}": value for key, value in module.state_dict().items()})
    for prefix in ("quantize", "quant_conv", "post_quant_conv"):
        state.update({f"{prefix}.{key}": value for key, value in modules[prefix].state_dict().items()})
    autoencoder = [p for name in ("encoder", "decoder", *_QUANT) for p in modules[name].parameters()]
    learning_rate = float(config["model"]["base_learning_rate"])
    return {
        "epoch": 24,
        "global_step": global_step,
        "pytorch-lightning_version": "1.0.8",
        "callbacks": {ModelCheckpoint: _checkpoint_callback_state(params.get("monitor", "val/rec_loss"))},
        "optimizer_states": [
            _adam_state(autoencoder, learning_rate, global_step),
            _adam_state(list(loss.discriminator.parameters()), learning_rate, global_step),
        ],
        "lr_schedulers": [],
        "state_dict": state,
    }


_QUANT = ("quantize", "quant_conv", "post_quant_conv")


def _training_loss(loss_params: dict) -> torch.nn.Module:
    """taming's VQLPIPSWithDiscriminator, rebuilt without downloading VGG or LPIPS weights: same submodules,
    same parameter names and shapes."""
    from taming.modules.discriminator.model import NLayerDiscriminator, weights_init
    from taming.modules.losses.lpips import NetLinLayer, ScalingLayer

    loss = torch.nn.Module()
    perceptual = torch.nn.Module()
    perceptual.scaling_layer = ScalingLayer()
    perceptual.net = _vgg16_slices()
    for k, channels in enumerate((64, 128, 256, 512, 512)):
        perceptual.add_module(f"lin{k}", NetLinLayer(channels, use_dropout=True))
    loss.perceptual_loss = perceptual
    loss.discriminator = NLayerDiscriminator(
        input_nc=loss_params.get("disc_in_channels", 3),
        n_layers=loss_params.get("disc_num_layers", 3),
        use_actnorm=loss_params.get("use_actnorm", False),
        ndf=loss_params.get("disc_ndf", 64),
    ).apply(weights_init)
    return loss


def _vgg16_slices() -> torch.nn.Module:
    """LPIPS's `vgg16`: torchvision's VGG16 features cut into five slices that keep their layer indices."""
    from torchvision.models.vgg import cfgs, make_layers

    features = make_layers(cfgs["D"])  # VGG16's convolutional part, without its 100M-parameter classifier
    net = torch.nn.Module()
    for number, (start, stop) in enumerate([(0, 4), (4, 9), (9, 16), (16, 23), (23, 30)], start=1):
        part = torch.nn.Sequential()
        for index in range(start, stop):
            part.add_module(str(index), features[index])
        net.add_module(f"slice{number}", part)
    return net


def _adam_state(parameters: list[torch.Tensor], lr: float, step: int) -> dict:
    """An Adam state dict as torch 1.7 saved it (integer step), with small random moments."""
    return {
        "state": {
            index: {
                "step": step,
                "exp_avg": torch.randn_like(p) * 1e-4,
                "exp_avg_sq": torch.rand_like(p) * 1e-8,
            }
            for index, p in enumerate(parameters)
        },
        "param_groups": [
            {
                "lr": lr,
                "betas": (0.5, 0.9),
                "eps": 1e-08,
                "weight_decay": 0,
                "amsgrad": False,
                "params": list(range(len(parameters))),
            }
        ],
    }


def _checkpoint_callback_state(monitor: str) -> dict:
    """What Lightning 1.0's ModelCheckpoint.on_save_checkpoint returned."""
    return {
        "monitor": monitor,
        "best_model_score": torch.tensor(0.4567),
        "best_model_path": "logs/2020-11-09T13-31-51_imagenet_vqgan/checkpoints/last.ckpt",
        "current_score": torch.tensor(0.4567),
        "dirpath": "logs/2020-11-09T13-31-51_imagenet_vqgan/checkpoints",
    }


def write_lightning_checkpoint(content: dict, path: Path) -> None:
    torch.save(content, path, pickle_module=_LightningPickle)


# -- stand-ins: building, caching -----------------------------------------------------------------------


@dataclass(frozen=True)
class StandIn:
    """A built stand-in file and what the course must check it against."""

    asset: str
    path: Path
    sha256: str
    size: int


def build_standins(cache: Path = CACHE, seed: int = SEED, log=print) -> dict[str, StandIn]:
    """Every full-profile asset's stand-in, built into `cache` or reused from it when still intact."""
    import open_clip

    cache.mkdir(parents=True, exist_ok=True)
    record_path = cache / "standins.json"
    version = {"builder": BUILDER_VERSION, "seed": seed, "open_clip": open_clip.__version__}
    reused = _reusable(record_path, cache, version)
    if reused is not None:
        log(f"stand-ins: reusing {', '.join(reused)} from {cache}")
        return reused
    builders = {
        CLIP_ASSET: ("open_clip_model.safetensors", lambda path: write_clip_standin(path, seed)),
        VQGAN_ASSET: (
            "last.ckpt",
            lambda path: write_lightning_checkpoint(vqgan_checkpoint(vqgan_config(), seed), path),
        ),
        CONFIG_ASSET: ("model.yaml", lambda path: path.write_text(VQGAN_CONFIG_YAML, encoding="utf-8")),
    }
    built = {}
    for asset, (filename, build) in builders.items():
        started = time.perf_counter()
        path = cache / filename
        build(path)
        built[asset] = StandIn(asset, path, _sha256(path), path.stat().st_size)
        seconds = time.perf_counter() - started
        log(f"stand-ins: built {filename} ({built[asset].size / 1e6:.1f} MB) in {seconds:.0f} s")
    record = {
        **version,
        "files": {a: {"file": s.path.name, "sha256": s.sha256, "size": s.size} for a, s in built.items()},
    }
    record_path.write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")
    return built


def _reusable(record_path: Path, cache: Path, version: dict) -> dict[str, StandIn] | None:
    """The cached stand-ins, if they were built by this builder version and still hash as recorded."""
    try:
        record = json.loads(record_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if any(record.get(key) != value for key, value in version.items()):
        return None
    standins = {
        asset: StandIn(asset, cache / entry["file"], entry["sha256"], entry["size"])
        for asset, entry in record.get("files", {}).items()
    }
    intact = all(
        s.path.is_file() and s.path.stat().st_size == s.size and _sha256(s.path) == s.sha256
        for s in standins.values()
    )
    return standins if intact and set(standins) == {CLIP_ASSET, VQGAN_ASSET, CONFIG_ASSET} else None


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


# -- serving ---------------------------------------------------------------------------------------------


class StandInServer:
    """Serves the stand-in files (and nothing else) from 127.0.0.1 on a free port, in a daemon thread.

    Bounded: it answers GET and HEAD for the files it was given, each connection times out after a minute
    of silence, and `close` (or leaving the `with` block) stops it.
    """

    def __init__(self, files: dict[str, Path]) -> None:
        routes = {f"/{path.name}": path for path in files.values()}

        class Handler(BaseHTTPRequestHandler):
            timeout = 60

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                self._answer(body=False)

            def do_GET(self) -> None:
                self._answer(body=True)

            def _answer(self, body: bool) -> None:
                path = routes.get(self.path)
                if path is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(path.stat().st_size))
                self.end_headers()
                if body:
                    with open(path, "rb") as stream:
                        shutil.copyfileobj(stream, self.wfile, 1 << 20)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path: Path) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/{path.name}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=10)

    def __enter__(self) -> StandInServer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def write_overrides(standins: dict[str, StandIn], server: StandInServer, path: Path) -> Path:
    """The MMLESSON_ASSET_OVERRIDES file: each asset -> its stand-in's URL, sha256 and size."""
    overrides = {
        name: {"url": server.url(s.path), "sha256": s.sha256, "size": s.size} for name, s in standins.items()
    }
    path.write_text(json.dumps(overrides, indent=2) + "\n", encoding="utf-8")
    return path


def kernel_environment(overrides: Path, cache: Path) -> dict[str, str]:
    """A learner's first run of the full profile: fresh cache, no hub access, no display, no proxies."""
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}
    env.update(
        MMLESSON_PROFILE="full",
        MMLESSON_CACHE=str(cache),
        HF_HUB_OFFLINE="1",
        MPLBACKEND="Agg",
        NO_PROXY="127.0.0.1,localhost",
        PYDEVD_DISABLE_FILE_VALIDATION="1",
    )
    env[OVERRIDES_VARIABLE] = str(overrides)
    return env


def check_hook_is_honoured(env: dict[str, str], standins: dict[str, StandIn]) -> None:
    """Fail early, with the reason, if the course's registry ignores the overrides (then every lesson would
    try the real URLs and fail far less clearly)."""
    probe = (
        "import json, mmlesson.course.assets as a; "
        f"print(json.dumps({{n: a.get(n).sha256 for n in {sorted(standins)!r}}}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], env=env, capture_output=True, text=True, cwd=NOTEBOOKS
    )
    if done.returncode != 0:
        raise RuntimeError(
            f"importing mmlesson.course.assets with the overrides failed:\n{done.stderr.strip()}"
        )
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    ignored = [name for name, s in standins.items() if seen.get(name) != s.sha256]
    if ignored:
        raise RuntimeError(
            f"mmlesson.course.assets ignores {OVERRIDES_VARIABLE} for {', '.join(ignored)}: the registry "
            "must call mmlesson.course.asset_overrides.apply_overrides(REGISTRY, os.environ) once it is "
            "filled."
        )


# -- executing -------------------------------------------------------------------------------------------


@dataclass
class LessonResult:
    lesson: str
    seconds: float = 0.0
    cpu_seconds: float | None = None  # the kernel's CPU time: what the lesson costs, however busy the machine
    peak_ram: int | None = None
    peak_gpu: int | None = None
    errors: list[str] = field(default_factory=list)
    quality_failures: list[str] = field(default_factory=list)
    cell_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def status(self) -> str:
        if self.errors:
            return "FAIL"
        return "pass (quality check failed on stand-in weights)" if self.quality_failures else "pass"


# Appended to each executed copy: the kernel reports its own peak memory (ru_maxrss is kB on Linux, bytes
# on macOS); the GPU's peak only when the lesson imported torch and a GPU is there.
_MEASURE_CELL = f"""\
import json as _json, resource as _resource, sys as _sys
_torch = _sys.modules.get("torch")
_usage = _resource.getrusage(_resource.RUSAGE_SELF)
_ram = _usage.ru_maxrss * (1 if _sys.platform == "darwin" else 1024)
_gpu = _torch.cuda.max_memory_allocated() if _torch is not None and _torch.cuda.is_available() else None
_cpu = _usage.ru_utime + _usage.ru_stime
print({MEASURE_MARK!r} + _json.dumps({{"peak_ram": _ram, "peak_gpu": _gpu, "cpu_seconds": _cpu}}))
"""


class PeakSampler:
    """Reads the kernel's peak resident memory (VmHWM, Linux) every second from outside the kernel.

    The kernel reports its own peak at the end (portable, and with the GPU's); this sampler is what is left
    when a kernel is killed, e.g. by the out-of-memory killer, which is exactly when the number matters.
    """

    def __init__(self, pid: int | None, every: float = 1.0) -> None:
        self.peak: int | None = None
        self._status = Path(f"/proc/{pid}/status") if pid else None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(every,), daemon=True)
        self._thread.start()

    def _run(self, every: float) -> None:
        while self._status is not None and not self._stop.wait(every):
            try:
                text = self._status.read_text()
            except OSError:
                return
            kilobytes = [int(line.split()[1]) for line in text.splitlines() if line.startswith("VmHWM:")]
            if kilobytes:
                self.peak = max(self.peak or 0, kilobytes[0] * 1024)

    def stop(self) -> int | None:
        self._stop.set()
        self._thread.join(timeout=5)
        return self.peak


def rehearse(lesson: str, notebook: Path, env: dict[str, str], cell_timeout: int, log=print) -> tuple:
    """Execute a copy of `notebook` in a kernel of this Python, from the notebook's folder as Jupyter
    would; (LessonResult, the executed copy)."""
    import nbformat
    from nbclient import NotebookClient

    from mmlesson.course.kernels import wait_in_slices

    nb = nbformat.read(notebook, as_version=4)
    result = LessonResult(lesson)
    client = NotebookClient(
        nb,
        timeout=cell_timeout,
        kernel_name="python3",
        resources={"metadata": {"path": str(notebook.parent)}},
    )
    started = time.perf_counter()
    client.reset_execution_trackers()
    with client.setup_kernel(env=env):
        wait_in_slices(client)
        sampler = PeakSampler(getattr(client.km.provisioner, "pid", None))
        _run_cells(client, nb, result, log)
        result.seconds = time.perf_counter() - started
        _measure(client, nb, result)
        result.peak_ram = result.peak_ram or sampler.stop()
    return result, nb


def _run_cells(client, nb, result: LessonResult, log) -> None:
    """Every code cell in order, until the first error; a failed quality check is noted and passed over."""
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        where = f"cell {index} (id {cell.get('id', '?')})"
        cell_started = time.perf_counter()
        try:
            client.execute_cell(cell, index, execution_count=client.code_cells_executed + 1)
        except CellExecutionError as error:
            message = f"{where}: {error.ename}: {_first_line(error.evalue)}"
            if QUALITY_TAG in cell.metadata.get("tags", []) and error.ename == "AssertionError":
                result.quality_failures.append(message)
            else:
                result.errors.append(message)
        except (CellTimeoutError, DeadKernelError) as error:
            result.errors.append(f"{where}: {type(error).__name__}: {_first_line(str(error))}")
        seconds = result.cell_seconds[where] = time.perf_counter() - cell_started
        log(f"  [{result.lesson}] {where}: {seconds:.1f} s{' ERROR' if result.errors else ''}")
        if result.errors:
            return


def _measure(client, nb, result: LessonResult) -> None:
    """Run one more cell in the lesson's kernel that reports its peak memory (RAM, and GPU when used) and
    CPU time; nothing when the kernel is dead."""
    import nbformat
    from nbclient.exceptions import CellExecutionError, CellTimeoutError, DeadKernelError

    cell = nbformat.v4.new_code_cell(_MEASURE_CELL)
    nb.cells.append(cell)  # nbclient writes each executed cell back into the notebook, by index
    try:
        client.execute_cell(cell, len(nb.cells) - 1)
    except (CellExecutionError, CellTimeoutError, DeadKernelError):
        return
    finally:
        nb.cells.pop()
    for output in cell.outputs:
        for line in output.get("text", "").splitlines():
            if line.startswith(MEASURE_MARK):
                measured = json.loads(line[len(MEASURE_MARK) :])
                result.peak_ram, result.peak_gpu = measured["peak_ram"], measured["peak_gpu"]
                result.cpu_seconds = measured["cpu_seconds"]


def _first_line(text: str) -> str:
    plain = re.sub(r"\x1b\[[0-9;]*m", "", str(text)).strip()
    return plain.splitlines()[0][:300] if plain else "(no message)"


# -- reporting -------------------------------------------------------------------------------------------


def report(results: list[LessonResult]) -> str:
    """The table, then every error and quality failure, then each lesson's slowest cells."""
    rows = [("lesson", "result", "seconds", "kernel CPU s", "peak RAM", "peak GPU")]
    for r in results:
        gpu = "-" if r.peak_gpu is None else f"{r.peak_gpu / 2**30:.2f} GiB"
        ram = "?" if r.peak_ram is None else f"{r.peak_ram / 2**30:.2f} GiB"
        cpu = "?" if r.cpu_seconds is None else f"{r.cpu_seconds:.0f}"
        rows.append((r.lesson, r.status, f"{r.seconds:.0f}", cpu, ram, gpu))
    widths = [max(len(row[k]) for row in rows) for k in range(len(rows[0]))]
    lines = ["  ".join(value.ljust(width) for value, width in zip(row, widths)).rstrip() for row in rows]
    for r in results:
        lines += [f"{r.lesson} ERROR {e}" for e in r.errors]
        lines += [f"{r.lesson} quality check failed on stand-in weights: {q}" for q in r.quality_failures]
    for r in results:
        slowest = sorted(r.cell_seconds.items(), key=lambda item: -item[1])[:3]
        lines.append(f"{r.lesson} slowest: " + ", ".join(f"{where} {s:.0f} s" for where, s in slowest))
    return "\n".join(lines)


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("lessons", nargs="*", help="lesson numbers, e.g. 02 04 (default: every lesson)")
    parser.add_argument("--cell-timeout", type=int, default=3600, help="seconds one cell may run (3600)")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the stand-ins are built and kept")
    parser.add_argument(
        "--executed", type=Path, help="save the executed copies of the lessons in this folder"
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="no line per cell")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    available = available_lessons()
    try:
        lessons = choose_lessons(args.lessons, available)
    except UnknownLessonError as error:
        print(error, file=sys.stderr)
        return 2
    standins = build_standins(args.cache)
    results = []
    with StandInServer({name: s.path for name, s in standins.items()}) as server, _temporary() as scratch:
        overrides = write_overrides(standins, server, scratch / "overrides.json")
        try:
            check_hook_is_honoured(kernel_environment(overrides, scratch / "probe-cache"), standins)
        except RuntimeError as error:
            print(error, file=sys.stderr)
            return 1
        for lesson in lessons:
            print(f"lesson {lesson}: {available[lesson].name}", flush=True)
            with _temporary() as cache:  # a learner's first run: nothing cached
                env = kernel_environment(overrides, cache)
                log = (lambda line: None) if args.quiet else (lambda line: print(line, flush=True))
                result, executed = rehearse(lesson, available[lesson], env, args.cell_timeout, log)
            results.append(result)
            if args.executed:
                _save(executed, args.executed / available[lesson].name)
    print(report(results))
    return 1 if any(r.errors for r in results) else 0


@contextlib.contextmanager
def _temporary() -> Iterator[Path]:
    folder = Path(tempfile.mkdtemp(prefix="mmlesson-rehearsal-"))
    try:
        yield folder
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def _save(nb, path: Path) -> None:
    import nbformat

    path.parent.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, path)


if __name__ == "__main__":
    sys.exit(main())
