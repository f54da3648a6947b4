"""Where the course runs: device, seed, threads, and the profile (`tiny` or `full`).

Every notebook starts with `mmlesson.setup()`. It decides once, prints what it decided *and why*, and
returns a `Runtime` that later calls (`load_clip`, `load_vqgan`, ...) consult, so a lesson never hard-codes
"cuda" or a model name. Environment variables let a learner or an instructor override each choice without
editing a notebook:

- `MMLESSON_DEVICE`  cpu | cuda | cuda:N | mps | auto
- `MMLESSON_PROFILE` tiny | full | auto
- `MMLESSON_THREADS` number of CPU threads torch may use
- `MMLESSON_CACHE`   where downloaded weights live (see `mmlesson.course.assets`)
- `MMLESSON_DOWNLOAD_DEADLINE` seconds one download may take in all (see `mmlesson.course.assets`)
"""

from __future__ import annotations

import os
import platform
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mmlesson.checks import check_seed
from mmlesson.course.assets import display_path, for_profile, human_size, is_cached, read_manifest
from mmlesson.course.profiles import PROFILE_CHOICES, PROFILES
from mmlesson.course.progress import progress_bar
from mmlesson.errors import MMLessonError

# The names lessons use; see API.md.
__all__ = [
    "Runtime",
    "setup",
    "current",
    "seed_everything",
    "available_memory_bytes",
    "progress_bar",
    # The part of the course's file handling a lesson shows (mmlesson.course.assets does the work):
    "for_profile",
    "is_cached",
    "human_size",
    "read_manifest",
]


@dataclass(frozen=True)
class Choice:
    """A decision and the sentence that explains it to the learner."""

    value: str
    reason: str


@dataclass(frozen=True)
class Runtime:
    """What `setup()` decided. Later calls read `.device` and `.profile` from here."""

    device: torch.device
    device_reason: str
    profile: str
    profile_reason: str
    seed: int
    threads: int
    cache_dir: Path

    def __repr__(self) -> str:
        return f"Runtime(device='{self.device}', profile='{self.profile}', seed={self.seed})"

    def summary(self) -> str:
        """The short block `setup()` prints; also the head of `python -m mmlesson doctor`."""
        import open_clip

        from mmlesson import __version__

        versions = (
            f"mmlesson {__version__} | torch {torch.__version__} | open_clip {open_clip.__version__}"
            f" | Python {platform.python_version()}"
        )
        return "\n".join(
            [
                versions,
                f"device : {self.device} ({self.device_reason}); {self.threads} CPU threads",
                f"profile: {self.profile} ({self.profile_reason})",
                f"cache  : {display_path(self.cache_dir)}",
                f"seed   : {self.seed}",
            ]
        )


def _requested(argument: str | None, keyword: str, variable: str) -> tuple[str, str]:
    """The value asked for, and who asked, as the learner wrote it: the argument wins over the variable."""
    if argument is not None:
        return argument.strip().lower(), f"{keyword}={argument!r}"
    if os.environ.get(variable, "").strip():
        return os.environ[variable].strip().lower(), f"{variable}={os.environ[variable].strip()}"
    return "auto", "auto"


def _gpu_kind() -> str | None:
    """'cuda' or 'mps' when torch can use a GPU here, else None."""
    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return None


def choose_device(requested: str | None = None) -> Choice:
    """cuda, then mps, then cpu; an explicit request that this machine cannot honour is an error."""
    name, source = _requested(requested, "device", "MMLESSON_DEVICE")
    if name == "auto":
        gpu = _gpu_kind()
        if gpu == "cuda":
            return Choice("cuda", f"GPU found: {torch.cuda.get_device_name(0)}")
        if gpu == "mps":
            return Choice("mps", "Apple GPU found (MPS)")
        return Choice("cpu", "no GPU found")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise MMLessonError(f"Unknown device: {source}. Use one of: cpu, cuda, cuda:N, mps, auto.") from None
    if device.type not in ("cpu", "cuda", "mps"):
        raise MMLessonError(f"Unsupported device: {source}. Use one of: cpu, cuda, mps, auto.")
    _check_device_available(device, source)
    return Choice(str(device), source)


def _check_device_available(device: torch.device, source: str) -> None:
    """Fail now, with advice, rather than later inside torch with a CUDA traceback."""
    advice = "Unset MMLESSON_DEVICE (or pass device='auto') to let the course pick, or use 'cpu'."
    if device.type == "cuda":
        if not torch.cuda.is_available():
            build = (
                "a CPU-only torch"
                if torch.version.cuda is None
                else f"torch built for CUDA {torch.version.cuda}"
            )
            raise MMLessonError(
                f"{source} was requested but no usable NVIDIA GPU is visible "
                f"({build}; torch.cuda.is_available() is False). {advice}"
            )
        index = device.index or 0
        if index >= torch.cuda.device_count():
            raise MMLessonError(
                f"{source} was requested but this machine has "
                f"{torch.cuda.device_count()} GPU(s), numbered from 0. {advice}"
            )
    if device.type == "mps" and _gpu_kind() != "mps":
        raise MMLessonError(f"{source} was requested but no Apple GPU is available. {advice}")


def choose_profile(requested: str | None, device: torch.device) -> Choice:
    """`tiny` runs anywhere; `auto` picks `full` only with a GPU and weights that are cached or reachable."""
    name, source = _requested(requested, "profile", "MMLESSON_PROFILE")
    if name not in PROFILE_CHOICES:
        raise MMLessonError(
            f"Unknown profile: {source}. Use 'tiny' (small models shipped with the course, any "
            "CPU, offline), 'full' (pretrained ViT-B-32 and VQGAN, needs a GPU and a download) or 'auto'."
        )
    if name == "tiny":
        return Choice("tiny", f"{source}: small models shipped with the course, runs offline on any CPU")
    if name == "full":
        note = "" if device.type != "cpu" else "; on a CPU it works but generation is slow"
        return Choice("full", f"{source}: pretrained open_clip ViT-B-32 and VQGAN f16-16384{note}")
    return _auto_profile(device)


def _auto_profile(device: torch.device) -> Choice:
    from mmlesson.course import assets

    if device.type == "cpu":
        return Choice("tiny", "no GPU found: the tiny profile runs on any CPU, offline")
    missing = [a for a in assets.for_profile("full") if not assets.is_cached(a.name)]
    if not missing:
        return Choice("full", "GPU found and the pretrained weights are cached")
    if assets.reachable(missing[0]):
        size = assets.human_size(sum(a.size for a in missing))
        return Choice("full", f"GPU found; pretrained weights download on first use ({size})")
    return Choice("tiny", "GPU found, but the pretrained weights are not cached and cannot be downloaded")


def seed_everything(seed: int) -> None:
    """Seed every generator a lesson may touch, so a re-run shows the same pictures and numbers."""
    seed = check_seed(seed)
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def choose_threads(requested: int | None = None) -> int:
    """Use the cores this process may run on (not every core of a shared server), or MMLESSON_THREADS."""
    value: int | str | None = requested if requested is not None else os.environ.get("MMLESSON_THREADS")
    if value is None or value == "":
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    try:
        threads = int(value)
    except (TypeError, ValueError):
        threads = 0
    if threads < 1:
        raise MMLessonError(f"The thread count must be a positive integer, got {value!r} (MMLESSON_THREADS).")
    return threads


def available_memory_bytes(
    meminfo: Path = Path("/proc/meminfo"), cgroup: Path = Path("/sys/fs/cgroup")
) -> int | None:
    """Memory this process can still take, in bytes, or None where the system does not say (macOS, Windows).

    A JupyterHub or Binder seat is a container with its own limit, often far below the machine's memory,
    so the container's limit (cgroup v2: memory.max minus memory.current) counts as well as the machine's
    MemAvailable. A lesson asks before making a gigabyte of vectors, instead of having its kernel killed.
    """
    limits = [
        limit for limit in (_machine_available(meminfo), _container_headroom(cgroup)) if limit is not None
    ]
    return min(limits) if limits else None


def _machine_available(meminfo: Path) -> int | None:
    try:
        lines = meminfo.read_text().splitlines()
    except OSError:
        return None
    values = [int(line.split()[1]) * 1024 for line in lines if line.startswith("MemAvailable:")]
    return values[0] if values else None


def _container_headroom(cgroup: Path) -> int | None:
    try:
        limit = (cgroup / "memory.max").read_text().strip()
        return None if limit == "max" else int(limit) - int((cgroup / "memory.current").read_text())
    except (OSError, ValueError):
        return None


_current: Runtime | None = None
# The variables a quiet decision (`current()` without `setup()`) was made for; None after `setup()`, whose
# decision stands until the next `setup()`.
_decided_for: tuple[str, ...] | None = None
REQUEST_VARIABLES = ("MMLESSON_DEVICE", "MMLESSON_PROFILE", "MMLESSON_THREADS", "MMLESSON_CACHE")


def resolve(
    profile: str | None = None, seed: int = 0, device: str | None = None, threads: int | None = None
) -> Runtime:
    """Decide device, profile and threads without changing anything (no seeding, no printing)."""
    from mmlesson.course import assets

    device_choice = choose_device(device)
    torch_device = torch.device(device_choice.value)
    profile_choice = choose_profile(profile, torch_device)
    return Runtime(
        device=torch_device,
        device_reason=device_choice.reason,
        profile=profile_choice.value,
        profile_reason=profile_choice.reason,
        seed=seed,
        threads=choose_threads(threads),
        cache_dir=assets.cache_dir(),
    )


def setup(
    profile: str | None = None,
    seed: int = 0,
    device: str | None = None,
    threads: int | None = None,
    verbose: bool = True,
) -> Runtime:
    """Choose device and profile, seed everything, limit threads, print why; call once per notebook."""
    global _current, _decided_for
    runtime = resolve(profile, seed, device, threads)
    seed_everything(seed)
    torch.set_num_threads(runtime.threads)
    _current, _decided_for = runtime, None
    if verbose:
        print(runtime.summary())
    return runtime


def profile_and_device(
    profile: str | None = None, device: str | torch.device | None = None
) -> tuple[str, torch.device]:
    """The profile and device a loader should use: the arguments if given, else those of `setup()`."""
    active = current()
    profile = profile or active.profile
    if profile not in PROFILES:
        raise MMLessonError(f"Unknown profile {profile!r}: use 'tiny' or 'full'.")
    return profile, torch.device(choose_device(str(device)).value) if device is not None else active.device


def current() -> Runtime:
    """The runtime of the last `setup()`; without one, decide quietly (and seed nothing), once.

    The quiet decision is kept, so that the `auto` profile's checks (the cache, a network probe) run once
    per process rather than at every `load_*` call; it is made again only when one of the MMLESSON_*
    variables it depends on has changed since.
    """
    global _current, _decided_for
    asked = tuple(os.environ.get(name, "") for name in REQUEST_VARIABLES)
    if _current is None or (_decided_for is not None and _decided_for != asked):
        _current, _decided_for = resolve(), asked
    return _current
