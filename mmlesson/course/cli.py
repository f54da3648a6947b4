"""The command line: `python -m mmlesson doctor | fetch | assets | i18n | train`.

- `doctor` is what an instructor runs on every seat before a workshop: the `setup()` block, then a pass/fail
  line per check, and an exit status a script can test.
- `fetch --profile full` pre-downloads everything a profile needs into the cache (point a room at one shared
  cache with MMLESSON_CACHE), and fails loudly, naming what is missing, when it cannot.
- `assets` lists every file the course may download, its size and whether it is cached.
- `i18n extract | update | build | check` keeps the translated lessons in step with the English (see
  `mmlesson.course.i18n`); `check` is what CI runs.
- `train clip | vqgan | dalle [options]` makes a shipped tiny model again (see `mmlesson.course.training`).

Errors the learner can fix (`MMLessonError`) are printed as plain messages, never as tracebacks.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path

from mmlesson.course import assets
from mmlesson.course.profiles import PROFILE_CHOICES, PROFILES
from mmlesson.errors import MMLessonError

# (module to import, the name pip knows it by): what the lessons import.
REQUIRED_MODULES = (
    ("torch", "torch"),
    ("torchvision", "torchvision"),
    ("open_clip", "open_clip_torch"),
    ("taming.modules.diffusionmodules.model", "taming-transformers-rom1504"),
    ("taming.modules.vqvae.quantize", "taming-transformers-rom1504"),
    ("einops", "einops"),
    ("numpy", "numpy"),
    ("PIL", "pillow"),
    ("matplotlib", "matplotlib"),
    ("ipywidgets", "ipywidgets"),
    ("tqdm", "tqdm"),
    ("safetensors", "safetensors"),
    ("requests", "requests"),
    ("skimage", "scikit-image"),
    ("faiss", "faiss-cpu"),
    ("yaml", "pyyaml"),
)

Check = tuple[bool, str]


def check_modules() -> list[Check]:
    """Every module the lessons import, with its version, or the pip command that fixes it."""
    results = []
    for module, package in REQUIRED_MODULES:
        try:
            imported = importlib.import_module(module)
        except Exception as error:  # noqa: BLE001 - a broken install can raise anything on import
            results.append((False, f"import {module}: {error} -> pip install {package}"))
            continue
        version = getattr(imported, "__version__", "")
        results.append((True, f"import {module} {version}".rstrip()))
    return results


def check_tokenizer() -> Check:
    """The CLIP BPE vocabulary ships in open_clip's wheel; tokenizing must work offline."""
    import open_clip

    tokens = open_clip.get_tokenizer("ViT-B-32")(["a red circle"])
    return (tokens.shape == (1, 77), "CLIP tokenizer works offline (BPE vocabulary found)")


def check_cache(profile: str) -> Check:
    """A writable cache, or a read-only (shared) one that already holds everything the profile needs."""
    folder = assets.cache_dir()
    try:
        assets.ensure_writable(folder)
    except MMLessonError:
        if folder.is_dir() and all(assets.is_cached(asset.name) for asset in assets.for_profile(profile)):
            where = assets.display_path(folder)
            return (True, f"cache folder read-only (shared) and complete for the {profile} profile: {where}")
        raise
    return (True, f"cache folder writable: {assets.display_path(folder)}")


def check_shipped_weights() -> list[Check]:
    rows = assets.verify_shipped()
    if not rows:
        return [(True, "shipped weights: none in this version of the package")]
    return [(ok, f"shipped weights {name}: {detail}") for name, ok, detail in rows]


def check_profile_assets(profile: str) -> list[Check]:
    needed = assets.for_profile(profile)
    if not needed:
        return [(True, f"the {profile} profile downloads nothing: its models ship with the package")]
    hint = f"-> python -m mmlesson fetch --profile {profile}"
    results = []
    for asset in needed:
        cached = assets.is_cached(asset.name)
        state = "cached, sha256 ok" if cached else f"missing {hint}"
        results.append((cached, f"{asset.name} ({assets.human_size(asset.size)}): {state}"))
    return results


def check_shapes_world() -> Check:
    from mmlesson.data import ShapesWorld

    batch = ShapesWorld(seed=0).sample(4)
    return (len(batch.images) == 4, f"Shapes world renders ({batch.captions[0]!r})")


def _guarded(check: Callable[[], Check | list[Check]]) -> list[Check]:
    """Run one check; a failure becomes a FAIL line with its message instead of stopping the doctor."""
    try:
        result = check()
    except MMLessonError as error:
        return [(False, str(error))]
    except Exception as error:  # noqa: BLE001 - the doctor reports every problem it finds
        return [(False, f"{check.__name__}: {type(error).__name__}: {error}")]
    return result if isinstance(result, list) else [result]


def doctor(profile: str | None) -> int:
    """Print the environment and a pass/fail list; exit status 0 only when everything passes."""
    from mmlesson import runtime  # PyTorch: imported here, so that `i18n` runs where it is not installed

    try:
        chosen = runtime.resolve(profile=profile)
    except MMLessonError as error:
        print(f"[FAIL] {error}")
        return 1
    print(chosen.summary())
    print()
    checks = [
        check_modules,
        check_tokenizer,
        lambda: check_cache(chosen.profile),
        check_shipped_weights,
        lambda: check_profile_assets(chosen.profile),
        check_shapes_world,
    ]
    results = [line for check in checks for line in _guarded(check)]
    for ok, text in results:
        print(f"[{' ok ' if ok else 'FAIL'}] {text}")
    failed = sum(not ok for ok, _ in results)
    print(f"\n{len(results) - failed} passed, {failed} failed.")
    return 1 if failed else 0


def fetch(profile: str, progress: bool, deadline: float | None = None) -> int:
    """Download every asset a profile needs; non-zero exit, with instructions, if any is missing."""
    needed = assets.for_profile(profile)
    if not needed:
        print(f"The {profile} profile needs no downloads: its models ship inside the package.")
        return 0
    total = assets.human_size(sum(a.size for a in needed))
    where = assets.display_path(assets.cache_dir())
    print(f"The {profile} profile needs {len(needed)} files ({total}) in {where}")
    warn_if_private()
    missing = []
    for asset in needed:
        try:
            assets.fetch(asset.name, progress=progress, deadline=deadline)
            print(f"[ ok ] {asset.name} ({assets.human_size(asset.size)})")
        except MMLessonError as error:
            print(f"[FAIL] {error}")
            missing.append(asset.name)
    if missing:
        print(f"\n{len(missing)} of {len(needed)} files are missing: {', '.join(missing)}.")
        return 1
    print("\nEverything is in place.")
    return 0


def warn_if_private() -> None:
    """A shared cache (MMLESSON_CACHE) filled with a umask such as 077 would be unreadable for the room."""
    umask = assets.current_umask()
    if os.environ.get("MMLESSON_CACHE", "").strip() and umask & 0o004:
        print(
            f"Note: your umask is {umask:03o}, so the files fetched now are not readable by other users. "
            "For a cache shared by a room, run `umask 022` first."
        )


def list_assets(profile: str | None) -> int:
    """A table of the registry: what the course may download, how big, and whether it is cached."""
    rows = assets.for_profile(profile) if profile else list(assets.REGISTRY.values())
    for asset in rows:
        try:
            state = "cached" if assets.is_cached(asset.name) else "not cached"
        except assets.CacheAccessError:
            state = "unreadable"
        print(f"{asset.name:34} {assets.human_size(asset.size):>9}  {state:10}  {asset.purpose}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m mmlesson", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    doctor_cmd = commands.add_parser("doctor", help="check this machine for the course")
    doctor_cmd.add_argument("--profile", choices=PROFILE_CHOICES, default=None)
    fetch_cmd = commands.add_parser("fetch", help="pre-download the files a profile needs")
    fetch_cmd.add_argument("--profile", choices=PROFILES, required=True)
    fetch_cmd.add_argument("--no-progress", action="store_true", help="no progress bars (for logs)")
    fetch_cmd.add_argument(
        "--deadline",
        type=float,
        default=None,
        metavar="SECONDS",
        help="give up on a file after this long (default: MMLESSON_DOWNLOAD_DEADLINE, else from its size)",
    )
    assets_cmd = commands.add_parser("assets", help="list the files the course may download")
    assets_cmd.add_argument("--profile", choices=PROFILES, default=None)
    i18n_cmd = commands.add_parser("i18n", help="translations: extract, update, build or check them")
    i18n_cmd.add_argument(
        "action", choices=I18N_ACTIONS, help="; ".join(f"{k}: {v}" for k, v in I18N_ACTIONS.items())
    )
    i18n_cmd.add_argument(
        "--lang", action="append", help="a language code such as vi (repeatable; default: all)"
    )
    i18n_cmd.add_argument("--root", default=".", help="the course repository (default: this folder)")
    train_cmd = commands.add_parser("train", help="train a shipped tiny model again (--help after its name)")
    train_cmd.add_argument("model", choices=TRAINED_MODELS)
    train_cmd.add_argument("options", nargs=argparse.REMAINDER, help="e.g. --steps 200 --out /tmp/try")
    return parser


TRAINED_MODELS = ("clip", "vqgan", "dalle", "clip-batch-sweep")

I18N_ACTIONS = {
    "extract": "start PO files for a language",
    "update": "merge English changes into the PO files",
    "build": "write the translated notebooks and READMEs",
    "check": "fail unless every translation is complete and built",
}


def translations(action: str, langs: list[str] | None, root: str) -> int:
    """Run one i18n step and print what it did; exit status 1 when something is left to do."""
    for module in ("polib", "babel", "mistune", "nbformat"):  # the i18n extra: not needed to run the lessons
        try:
            importlib.import_module(module)
        except ImportError as error:
            raise MMLessonError(f'{module} is not installed: pip install "mmlesson[i18n]"') from error
    from mmlesson.course import i18n

    project = i18n.Project(Path(root))
    chosen = project.chosen_languages(langs, new_allowed=action == "extract")
    if action == "check":
        problems, coverage = i18n.check(project, chosen)
        print(coverage)
        for problem in problems:
            print(f"[FAIL] {problem}")
        print(f"\n{len(problems)} problems." if problems else "\nEvery translation is complete and built.")
        return 1 if problems else 0
    if action == "build":
        written, problems = i18n.build(project, chosen)
        for name in written:
            print(f"wrote {name}")
        for problem in problems:
            print(f"[not built] {problem}")
        print(f"{len(written)} files written, {len(problems)} not built.")
        return 1 if problems else 0
    step = i18n.extract if action == "extract" else i18n.update
    for line in step(project, chosen):
        print(line)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "doctor":
            return doctor(args.profile)
        if args.command == "fetch":
            return fetch(args.profile, progress=not args.no_progress, deadline=args.deadline)
        if args.command == "i18n":
            return translations(args.action, args.lang, args.root)
        if args.command == "train":
            from mmlesson.course.training import TRAINERS  # PyTorch: imported only for this command

            return TRAINERS[args.model](args.options)
        return list_assets(args.profile)
    except MMLessonError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
