"""Training stages and their lineage: ``datagen train --stage single|temporal|finetune``.

- **single**: single-frame pre-training: windows of one frame, so the model never
  sees a history (every frame is a first frame) and the temporal term is 0.
- **temporal**: recurrent training on windows of K frames; from scratch, or from a
  checkpoint (``--init RUN``, e.g. a single-stage run).
- **finetune**: from a checkpoint (``--init RUN``, required), training only on the
  hardest samples of the split: every window is scored under the initial model
  (``mine_hard_windows``: the reconstruction loss, L1 + SSIM + temporal with the run's
  weights, on the crop the dataset draws for it at epoch 0, without flips), and the
  top ``hard_fraction`` of them are trained on, each on that same crop (with the flips
  epoch 0 draws for it when augmentation is on; ``HardSamples``).

``--init`` takes the parent's weights only: the optimiser, schedule and step start
afresh. The run folder's run.json records the lineage: the stage, the parent (its run
folder, checkpoint file, sha256, step and stage) and the parent's own lineage, oldest
first; a finetune run adds the mined windows (sequence, start, loss), hardest first. A
resumed run keeps its run.json (and so its mined windows).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch.utils.data import Dataset

from datagen.errors import ConfigError
from datagen.train.checkpoint import load_checkpoint, run_dir_of
from datagen.train.data import WindowDataset
from datagen.train.metrics import LossWeights, loss_terms

STAGES = ("single", "temporal", "finetune")


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_parent(init: str) -> tuple[dict, dict]:
    """(the parent checkpoint, its lineage entry for run.json) from ``--init RUN|FILE.pt``."""
    ckpt, path = load_checkpoint(init)
    run = run_dir_of(path)
    parent_run = read_run_json(run)
    entry = {"run": str(run), "checkpoint": str(path), "sha256": sha256(path), "step": ckpt["step"],
             "stage": parent_run.get("stage", ckpt["config"].get("stage", "temporal"))}
    return ckpt, {"parent": entry, "lineage": [*parent_run.get("lineage", []), entry]}


def read_run_json(run_dir: Path) -> dict:
    path = run_dir / "run.json"
    return json.loads(path.read_text()) if path.is_file() else {}


def write_run_json(run_dir: Path, record: dict) -> None:
    (run_dir / "run.json").write_text(json.dumps(record, indent=2) + "\n")


@torch.no_grad()
def mine_hard_windows(model: torch.nn.Module, ds: WindowDataset, weights: LossWeights, fraction: float,
                      run: Callable, device: torch.device, batch: int) -> list[dict]:
    """Score every window of ``ds`` (at epoch 0, as the dataset crops it; build ``ds``
    without flips) under ``model``; the top ``fraction`` of them (at least ``batch``), as
    {"index", "sequence", "start", "loss"}, hardest first. ``run(model, batch)`` runs the
    model over a batch as the trainer does."""
    ds.set_epoch(0)
    model.eval()
    scored = []
    for first in range(0, len(ds), batch):
        items = [ds[i] for i in range(first, min(first + batch, len(ds)))]
        stacked = {k: torch.stack([item[k] for item in items]).to(device) for k in items[0]}
        out = run(model, stacked).float()
        for j in range(len(items)):
            one = {k: v[j:j + 1] for k, v in stacked.items()}
            loss, _ = loss_terms(out[j:j + 1], one, weights)
            scored.append((float(loss), first + j))
    model.train()
    keep = max(batch, round(fraction * len(scored)))
    hardest = sorted(scored, key=lambda s: (-s[0], s[1]))[:keep]
    return [{"index": i, "sequence": ds.windows[i][0], "start": ds.windows[i][1], "loss": loss}
            for loss, i in hardest]


class HardSamples(Dataset):
    """The mined windows of a WindowDataset, each on the crop it was scored on (epoch 0)."""

    def __init__(self, ds: WindowDataset, indices: list[int]):
        if not indices:
            raise ConfigError("finetune: no hard windows were mined; use a larger --hard-fraction")
        self.ds, self.indices = ds, indices
        ds.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Every epoch revisits the same samples (in a new order); the crops stay epoch 0's."""

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        """Mined window ``i`` on its epoch-0 crop; ``i`` may be (epoch, i), as
        ``EpochSampler`` gives it: the epoch orders the samples, the crop stays."""
        i = i[1] if isinstance(i, tuple) else i
        return self.ds[(0, self.indices[i])]
