"""Data-parallel CLIP training on this machine: pairs per second with 1 and 2 worker processes, the share of
a step spent communicating, and what bfloat16 autocast and gradient checkpointing do to memory.

- throughput: `torchrun --nproc_per_node=W -m mmlesson.train_clip` for 12 steps of a global batch of 128,
  timed from its step log (the median step after 2 warm-up steps); baseline: 1 worker, in the same run of this
  script. On a 2-core machine the two workers share the cores, so do not expect 2x: the ratio says what
  splitting the batch costs or gains here.
- communication: inside a 2-worker run, the time of the step's collectives done on their own (all-gather of
  this worker's image and text embeddings, all-reduce of the gradients, in one bucket as DDP sends this
  model's), as a share of the measured step.
- memory: peak resident memory of a fresh process that takes 3 steps at a batch of 256, for float32 and
  bfloat16, with and without gradient checkpointing (the baseline is float32 without).

    python benchmarks/bench_clip_distributed.py
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STEPS, BATCH = 12, 128
ENV = os.environ | {"HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 2) // 2))}


def median_step_seconds(workers: int, folder: Path) -> float:
    """Train with `workers` processes; the median seconds per step after two warm-up steps."""
    log = folder / f"log-{workers}.jsonl"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={workers}"]
    command += ["-m", "mmlesson.train_clip", "--", "--steps", str(STEPS), "--batch-size", str(BATCH)]
    command += ["--no-evaluate", "--out", str(folder / str(workers)), "--log", str(log)]
    threads = str(max(1, (os.cpu_count() or 2) // workers))  # the same cores in all, split between workers
    subprocess.run(
        command, env=ENV | {"OMP_NUM_THREADS": threads}, check=True, capture_output=True, timeout=900
    )
    seconds = [json.loads(line)["seconds"] for line in log.read_text(encoding="utf-8").splitlines()]
    return statistics.median(seconds[2:])


def communication_seconds() -> float:
    """Run in each of 2 workers: the median time of one step's collectives, done alone."""
    import torch
    import torch.distributed as dist

    from mmlesson.losses import gather_with_grad
    from mmlesson.train_clip import new_tiny_clip

    dist.init_process_group("gloo")
    model, _ = new_tiny_clip()
    gradients = torch.zeros(sum(p.numel() for p in model.parameters()))  # DDP sends them in one bucket
    embeddings = torch.zeros(BATCH // dist.get_world_size(), model.visual.output_dim)
    times = []
    for _ in range(10):
        dist.barrier()
        began = time.perf_counter()
        gather_with_grad(embeddings), gather_with_grad(embeddings)  # image and text embeddings
        dist.all_reduce(gradients)
        times.append(time.perf_counter() - began)
    if dist.get_rank() == 0:
        print(json.dumps({"communication_s": statistics.median(times)}))
    dist.destroy_process_group()
    return statistics.median(times)


def peak_memory_mb(precision: str, checkpointing: bool) -> float:
    """Peak resident memory of a fresh process taking 3 training steps at a batch of 256."""
    code = (
        "import resource, torch\n"
        "from mmlesson import data\n"
        "from mmlesson.train_clip import ClipTraining, new_tiny_clip, train_clip\n"
        "model, tokenizer = new_tiny_clip()\n"
        f"settings = ClipTraining(steps=3, batch_size=256, precision={precision!r}, "
        f"grad_checkpointing={checkpointing})\n"
        "train_clip(model, tokenizer, data.ShapesWorld(seed=0), settings, progress=False)\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], env=ENV, capture_output=True, text=True, check=True)
    return float(result.stdout.split()[-1])


def main() -> None:
    if "--communication" in sys.argv:  # one of the workers started below
        communication_seconds()
        return
    with tempfile.TemporaryDirectory() as folder:
        one, two = median_step_seconds(1, Path(folder)), median_step_seconds(2, Path(folder))
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
        command += [__file__, "--communication"]
        lines = subprocess.run(
            command, env=ENV, check=True, capture_output=True, text=True, timeout=600
        ).stdout
        talk = json.loads([line for line in lines.splitlines() if line.startswith("{")][-1])[
            "communication_s"
        ]
    print(f"1 worker     {BATCH / one:8.0f} pairs/s   ({one * 1000:.0f} ms per step of {BATCH} pairs)")
    print(f"2 workers    {BATCH / two:8.0f} pairs/s   ({two * 1000:.0f} ms per step)")
    print(
        f"ratio (2 workers / 1 worker)  {one / two:.2f}   ({os.cpu_count()} CPU cores shared by the workers)"
    )
    print(f"communication alone: {talk * 1000:.0f} ms, {talk / two:.0%} of a 2-worker step")
    baseline = peak_memory_mb("float32", False)
    for precision, checkpointing in (("float32", True), ("bfloat16", False), ("bfloat16", True)):
        peak = peak_memory_mb(precision, checkpointing)
        print(
            f"peak memory, batch 256, {precision:8} checkpointing={checkpointing!s:5}: {peak:6.0f} MB "
            f"(ratio to float32 without: {peak / baseline:.2f}; baseline {baseline:.0f} MB)"
        )


if __name__ == "__main__":
    main()
