"""CLIP trained on several processes (lesson 8): the same training as one process, resumable after a crash.

Every test starts real worker processes with `torchrun` (gloo on the CPU, bounded by timeouts): two workers
sharing a global batch must take the same steps as one worker holding all of it, when the embeddings are
gathered with gradients; without gathering they train differently, and the test says by how much.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from mmlesson.course.resume import latest_checkpoint
from mmlesson.errors import InputError
from mmlesson.train_clip import worker_share

# Each test launches processes that train for a while: minutes in all, so CI runs them (pytest -m "not slow"
# leaves them out).
pytestmark = pytest.mark.slow

TIMEOUT_S = 300
# A short warm-up, so that the steps move the weights by far more than rounding does; twelve steps leave time
# to kill a worker in the middle of a run.
RUN = ["--steps", "12", "--batch-size", "32", "--seed", "5", "--warmup", "1", "--checkpoint-every", "3"]
RUN += ["--no-evaluate"]
# float32: one worker and two sum the same numbers in a different order, so the losses agree to SAME_LOSS. The
# weights are compared by their mean absolute difference: Adam divides each step by the gradient's running
# size, so a rounding difference in a gradient that is almost exactly zero can still move that one weight by
# up to the learning rate, which a largest-difference test would take for a real one.
SAME_LOSS, SAME_WEIGHTS = 1e-5, 1e-6


def torchrun(workers: int, out: Path, *options: str, wait: bool = True) -> subprocess.Popen:
    """`torchrun --standalone --nproc_per_node=W -m mmlesson.train_clip -- OPTIONS --out OUT --log LOG`.

    The `--` keeps torchrun from reading the trainer's `--log` as an abbreviation of its own `--log-dir`."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={workers}"]
    command += [
        "-m",
        "mmlesson.train_clip",
        "--",
        *options,
        "--out",
        str(out),
        "--log",
        str(out / "log.jsonl"),
    ]
    env = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    process = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if wait:
        process.output = process.communicate(timeout=TIMEOUT_S)[0]
    return process


def log_entries(out: Path) -> list[dict]:
    """The run's log: one {"step", "loss", "seconds"} per step it finished."""
    return [json.loads(line) for line in (out / "log.jsonl").read_text(encoding="utf-8").splitlines()]


def log_losses(out: Path) -> list[float]:
    return [entry["loss"] for entry in log_entries(out)]


def manifest_of(out: Path) -> dict:
    return json.loads((out / "mmlesson-tiny-clip.manifest.json").read_text(encoding="utf-8"))


def final_weights(out: Path) -> dict[str, torch.Tensor]:
    """The float32 weights of the run's last checkpoint (the shipped file is float16)."""
    stored = load_file(str(latest_checkpoint(out)))
    return {key: value for key, value in stored.items() if key.startswith("model.")}


def mean_difference(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    """The mean absolute difference of two models' weights, over all their weights."""
    total = sum((a[key] - b[key]).abs().sum().item() for key in a)
    return total / sum(value.numel() for value in a.values())


@pytest.fixture(scope="module")
def one_worker(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("one")
    assert torchrun(1, out, *RUN).returncode == 0
    return out


def test_two_workers_with_the_local_loss_train_exactly_as_one(one_worker, tmp_path):
    """Each worker computes only its rows and columns of the global logits, and the steps are one worker's.
    (Two workers with the gathered loss, the default, are held to one worker's steps in the killed-worker
    test below, which trains that way.)"""
    run = torchrun(2, tmp_path, *RUN, "--local-loss")
    assert run.returncode == 0, run.output
    assert log_losses(tmp_path) == pytest.approx(log_losses(one_worker), abs=SAME_LOSS)
    assert mean_difference(final_weights(tmp_path), final_weights(one_worker)) < SAME_WEIGHTS
    assert manifest_of(tmp_path)["training"]["world_size"] == 2


def test_without_gathering_each_worker_sees_fewer_negatives_and_trains_differently(one_worker, tmp_path):
    run = torchrun(2, tmp_path, *RUN, "--no-gather")
    assert run.returncode == 0, run.output
    gap = [abs(a - b) for a, b in zip(log_losses(tmp_path), log_losses(one_worker))]
    weights_gap = mean_difference(final_weights(tmp_path), final_weights(one_worker))
    print(
        f"per-worker loss vs global loss: {gap[0]:.3f} at the first step; weights differ by {weights_gap:.2e}"
    )
    # 16 pairs per worker: the loss starts near log(16), not log(32), and the gradients differ from step 1.
    assert gap[0] > 0.5 and weights_gap > 10 * SAME_WEIGHTS


def worker_pids(launcher: subprocess.Popen) -> list[int]:
    import psutil  # a dependency of Jupyter's kernel, which the tests install

    return [child.pid for child in psutil.Process(launcher.pid).children(recursive=True)]


def test_a_killed_worker_leaves_the_last_checkpoint_and_the_resumed_run_ends_the_same(one_worker, tmp_path):
    """Two workers, one killed after its fifth step, then resumed: the same weights as the run never stopped
    (one worker's, which two workers match: see the test above)."""
    launcher = torchrun(2, tmp_path, *RUN, wait=False)
    deadline = time.monotonic() + TIMEOUT_S
    while not (tmp_path / "log.jsonl").exists() or len(log_losses(tmp_path)) < 5:
        assert time.monotonic() < deadline and launcher.poll() is None, (
            "the run ended before it could be killed"
        )
        time.sleep(0.05)
    os.kill(worker_pids(launcher)[-1], signal.SIGKILL)
    launcher.communicate(timeout=TIMEOUT_S)
    assert launcher.returncode != 0, "torchrun reports the dead worker"
    assert latest_checkpoint(tmp_path).name in {"step-000003.safetensors", "step-000006.safetensors"}

    resumed = torchrun(2, tmp_path, *RUN, "--resume")
    assert resumed.returncode == 0, resumed.output
    assert latest_checkpoint(tmp_path).name == "step-000012.safetensors"
    assert mean_difference(final_weights(tmp_path), final_weights(one_worker)) < SAME_WEIGHTS
    # The log has every step, those lost in the crash twice: the replayed steps took the same losses.
    by_step = {entry["step"]: entry["loss"] for entry in log_entries(tmp_path)}
    losses = [by_step[step] for step in sorted(by_step)]
    assert losses == pytest.approx(log_losses(one_worker), abs=SAME_LOSS)
    assert manifest_of(tmp_path)["training"]["world_size"] == 2


def test_a_resume_with_other_settings_or_nothing_to_resume_is_refused(one_worker, tmp_path, capsys):
    """Refused before any training, with what differs or what is missing (one process: no launcher needed)."""
    from mmlesson.course.training import train_clip_command

    assert train_clip_command([*RUN[:1], "7", *RUN[2:], "--out", str(one_worker), "--resume"]) == 2
    assert "steps: 12 there, 7 now" in capsys.readouterr().err
    assert train_clip_command([*RUN, "--out", str(tmp_path), "--resume"]) == 2
    assert "there is no checkpoint to resume from" in capsys.readouterr().err


def test_a_global_batch_must_split_evenly_over_the_workers():
    assert worker_share(64, 1, 2) == slice(32, 64)
    with pytest.raises(InputError, match="does not split evenly over 2 workers.*multiple of 2 \\(e.g. 62\\)"):
        worker_share(63, 0, 2)
    with pytest.raises(InputError, match="multiple of 4 \\(e.g. 4\\)"):
        worker_share(2, 0, 4)  # more workers than pairs


def compare_with_open_clip(rank: int, world_size: int, folder: str) -> None:
    """One worker: its share of 8 pairs through our global loss and through open_clip's ClipLoss."""
    import torch.distributed as dist
    import torch.nn.functional as F
    from open_clip.loss import ClipLoss

    from mmlesson.losses import contrastive_loss, global_contrastive_loss

    dist.init_process_group(
        "gloo", init_method=f"file://{folder}/rendezvous", rank=rank, world_size=world_size
    )
    generator = torch.Generator().manual_seed(0)
    images, texts = torch.randn(8, 16, generator=generator), torch.randn(8, 16, generator=generator)
    share, scale = slice(4 * rank, 4 * rank + 4), torch.tensor(10.0)
    found = {"full_batch_loss": contrastive_loss(images, texts, scale).item()}
    for local in (False, True):
        theirs = ClipLoss(local_loss=local, gather_with_grad=True, rank=rank, world_size=world_size)
        for name, loss in (("ours", global_contrastive_loss), ("open_clip", None)):
            mine_i, mine_t = images[share].clone().requires_grad_(), texts[share].clone().requires_grad_()
            if loss is None:  # open_clip's loss takes normalized features
                value = theirs(F.normalize(mine_i, dim=-1), F.normalize(mine_t, dim=-1), scale)
            else:
                value = loss(mine_i, mine_t, scale, local_loss=local)
            value.backward()
            found[f"{name}_local_{local}"] = [value.item(), mine_i.grad.tolist(), mine_t.grad.tolist()]
    Path(folder, f"rank{rank}.json").write_text(json.dumps(found), encoding="utf-8")
    dist.destroy_process_group()


def test_the_gathered_loss_agrees_with_open_clips_on_two_processes(tmp_path):
    torch.multiprocessing.spawn(compare_with_open_clip, args=(2, str(tmp_path)), nprocs=2, join=True)
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text(encoding="utf-8")) for r in range(2)]
    for found in ranks:
        for local in (False, True):
            ours, theirs = found[f"ours_local_{local}"], found[f"open_clip_local_{local}"]
            assert ours[0] == pytest.approx(theirs[0], abs=1e-6)
            assert torch.allclose(torch.tensor(ours[1]), torch.tensor(theirs[1]), atol=1e-6)
            assert torch.allclose(torch.tensor(ours[2]), torch.tensor(theirs[2]), atol=1e-6)
        # Gathered, every worker gets the loss of the whole batch, as one process holding all 8 pairs would.
        assert found["ours_local_False"][0] == pytest.approx(found["full_batch_loss"], abs=1e-6)
    # The local loss is a worker's share of it: the mean over workers is the whole batch's loss.
    shares = [found["ours_local_True"][0] for found in ranks]
    assert sum(shares) / 2 == pytest.approx(ranks[0]["full_batch_loss"], abs=1e-6)


def test_bfloat16_and_gradient_checkpointing_train_like_float32():
    """The two memory savers of lesson 8 change how a step is computed, not what it learns: gradient
    checkpointing recomputes the same activations, bfloat16 rounds them (8 bits of mantissa)."""
    from mmlesson import data
    from mmlesson.train_clip import ClipTraining, new_tiny_clip, train_clip

    def losses(**options) -> list[float]:
        model, tokenizer = new_tiny_clip(width=64, layers=2, seed=0)
        settings = ClipTraining(steps=3, batch_size=16, warmup=1, **options)
        return train_clip(model, tokenizer, data.ShapesWorld(seed=0), settings, progress=False)

    plain = losses()
    assert losses(grad_checkpointing=True) == pytest.approx(plain, abs=SAME_LOSS)
    assert losses(precision="bfloat16") == pytest.approx(plain, abs=0.05)
    with pytest.raises(InputError, match="precision 'float16' is not one the trainer knows"):
        losses(precision="float16")


def test_the_shipped_batch_size_sweep_says_how_it_was_made():
    """Lesson 8 plots the sweep: one row per batch size, all at the same number of pairs, and a command that
    asks for exactly the settings the file records."""
    from mmlesson.course.assets import WEIGHTS_DIR
    from mmlesson.course.training import BATCH_SWEEP_FILE
    from mmlesson.train_clip import BatchSweep
    from tests.helpers import command_gives_the_recorded_settings

    sweep = json.loads((WEIGHTS_DIR / BATCH_SWEEP_FILE).read_text(encoding="utf-8"))
    assert command_gives_the_recorded_settings(sweep, "clip-batch-sweep", BatchSweep)
    runs = sweep["runs"]
    assert [run["batch_size"] for run in runs] == sweep["settings"]["batch_sizes"]
    assert all(run["batch_size"] * run["steps"] == sweep["settings"]["pairs"] for run in runs)
    assert all(0 <= run["zero_shot_color_shape_all"] <= 1 for run in runs)
