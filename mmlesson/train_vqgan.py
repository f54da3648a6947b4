"""How the course's tiny VQGAN is trained and measured; the shipped weights come from `main()` below.

    python -m mmlesson.train_vqgan                       # train, evaluate, write mmlesson/weights/
    python -m mmlesson.train_vqgan --steps 50 --out /tmp/try   # a quick run elsewhere

Fresh Shapes-world images every step (nothing is seen twice). The loss is the reconstruction error (L1,
which keeps edges sharp, plus squared error, which is what PSNR measures) and the quantizer's codebook and
commitment terms. No LPIPS (it needs downloaded VGG weights) and no discriminator: on flat-colored shapes
the plain losses already reach the quality bars, and a GAN would double the CPU time.

Codebook entries that no latent picks stop learning (they get no gradient) and waste the codebook. Every
`RESTART_EVERY` steps, each entry unused since the last check is moved onto a random latent of the current
batch, a common remedy (e.g. Dhariwal et al., Jukebox, 2020).
"""

from __future__ import annotations

import json
import sys
import time

import torch
import torch.nn.functional as F

from mmlesson import data
from mmlesson.assets import save_shipped
from mmlesson.schedule import learning_rate, set_learning_rate
from mmlesson.train import training_arguments
from mmlesson.vqgan import TINY_VQGAN_NAME, VQGAN, psnr, tiny_vqgan_config

RESTART_EVERY = 100
EVALUATION = "ShapesWorld(seed=1000), items 0-999 (a seed never used in training)"


def restart_unused(model: VQGAN, latents: torch.Tensor, used: torch.Tensor) -> int:
    """Move every codebook entry not in `used` onto a random latent vector of this batch; return how many."""
    unused = (~used).nonzero().flatten()
    if len(unused):
        vectors = latents.detach().permute(0, 2, 3, 1).reshape(-1, latents.shape[1])
        picks = torch.randint(len(vectors), (len(unused),))
        with torch.no_grad():
            model.codebook[unused] = vectors[picks]
    return len(unused)


def train_vqgan(model: VQGAN, world: data.ShapesWorld, steps: int, batch_size: int, lr: float) -> list[float]:
    """Train in place; returns the loss of every step."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, betas=(0.5, 0.9))
    used = torch.zeros(model.codebook_size, dtype=torch.bool)
    losses = []
    model.train()
    for step in range(steps):
        set_learning_rate(optimizer, learning_rate(step, steps, lr, warmup=100, floor=0.1))
        pixels = world.sample(batch_size, start=step * batch_size).to_tensor() * 2 - 1
        latents = model.encode_latents(pixels)
        quantized, indices, codebook_loss = model.quantize_latents(latents)
        reconstruction = model.decode_latents(quantized)
        loss = (reconstruction - pixels).abs().mean() + F.mse_loss(reconstruction, pixels) + codebook_loss
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        used[indices.flatten()] = True
        if (step + 1) % RESTART_EVERY == 0 and step + 1 < steps * 0.8:  # let the last restarts settle
            restarted = restart_unused(model, latents, used)
            used[:] = False
            print(
                f"step {step + 1}: loss {loss.item():.4f}, restarted {restarted} unused entries", flush=True
            )
        losses.append(loss.item())
    model.eval()
    return losses


def evaluate_vqgan(model: VQGAN, n: int = 1000, batch_size: int = 100) -> dict[str, float]:
    """Reconstruction PSNR and codebook use on held-out Shapes images (see EVALUATION)."""
    images = data.ShapesWorld(seed=1000).sample(n).to_tensor()
    scores, counts = [], torch.zeros(model.codebook_size)
    with torch.no_grad():
        for start in range(0, n, batch_size):
            batch = images[start : start + batch_size]
            indices = model.encode(batch)
            scores.append(psnr(batch, model.decode(indices)))
            counts += torch.bincount(indices.flatten(), minlength=model.codebook_size)
    share = counts / counts.sum()
    entropy = -(share[share > 0] * share[share > 0].log()).sum()
    return {
        "psnr_db_mean": torch.cat(scores).mean().item(),
        "psnr_db_min": torch.cat(scores).min().item(),
        "codebook_used_share": (counts > 0).float().mean().item(),
        "codebook_perplexity": entropy.exp().item(),
    }


def main(argv: list[str] | None = None) -> int:
    args = training_arguments("python -m mmlesson.train_vqgan", __doc__.splitlines()[0], 2500, 16, argv)
    torch.manual_seed(args.seed)
    config = tiny_vqgan_config()
    model = VQGAN(config, TINY_VQGAN_NAME)
    started = time.perf_counter()
    losses = train_vqgan(model, data.ShapesWorld(seed=args.seed), args.steps, args.batch_size, args.lr)
    wall_time = time.perf_counter() - started
    model.load_state_dict({k: v.half().float() for k, v in model.state_dict().items()})  # as shipped
    metrics = evaluate_vqgan(model)
    images = args.steps * args.batch_size
    record = {
        "config": config,
        "training": {
            "command": "python -m mmlesson.train_vqgan " + " ".join(sys.argv[1:] if argv is None else argv),
            "seed": args.seed,
            "steps": args.steps,
            "batch_size": args.batch_size,
            "peak_lr": args.lr,
            "data": f"ShapesWorld(seed={args.seed}), items 0 to {images - 1}, one pass",
            "losses": "L1 + MSE reconstruction + codebook/commitment (beta 0.25); unused entries restarted",
            "wall_time_s": round(wall_time, 1),
            "threads": torch.get_num_threads(),
            "final_loss": round(sum(losses[-50:]) / len(losses[-50:]), 4),
            "versions": {"torch": torch.__version__},
        },
        "metrics": {k: round(v, 4) for k, v in metrics.items()},
        "evaluation": EVALUATION + "; metrics of the float16 weights as shipped",
    }
    path = save_shipped(TINY_VQGAN_NAME, model.state_dict(), args.out, record)
    print(json.dumps(record["metrics"], indent=2))
    print(f"wrote {path.name} and its weights in {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
