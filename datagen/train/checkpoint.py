"""Checkpoints: what a run saves, and loading one back (for --resume, eval and export).

A checkpoint is a dict saved with ``torch.save``: ``format`` (``CKPT_FORMAT``),
``version``, ``step``, ``config`` (the run's TrainConfig as JSON), ``model``,
``optimizer`` and ``scheduler`` state dicts, and ``rng`` (torch CPU/CUDA states).
Only plain types and tensors, so it loads with ``weights_only=True``.
Files: RUN_DIR/ckpt/step_NNNNNN.pt and RUN_DIR/ckpt/last.pt (a copy of the newest).
"""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import torch

from datagen.errors import ConfigError

CKPT_FORMAT = "datagen-train-checkpoint"
CKPT_VERSION = 1


def checkpoint_path(run_or_ckpt: str | os.PathLike) -> Path:
    """RUN_DIR -> RUN_DIR/ckpt/last.pt; a .pt file is taken as it is."""
    path = Path(run_or_ckpt)
    if path.is_dir():
        last = path / "ckpt" / "last.pt"
        if not last.is_file():
            raise ConfigError(f"{path}: no checkpoint at {last}; give a run folder made by "
                              "`datagen train` or a checkpoint file")
        return last
    if not path.is_file():
        raise ConfigError(f"{path}: no such run folder or checkpoint file")
    return path


def run_dir_of(ckpt: Path) -> Path:
    """The run folder a checkpoint belongs to (RUN_DIR/ckpt/x.pt -> RUN_DIR)."""
    return ckpt.parent.parent if ckpt.parent.name == "ckpt" else ckpt.parent


def load_checkpoint(run_or_ckpt: str | os.PathLike, map_location="cpu") -> tuple[dict, Path]:
    """(checkpoint dict, its path); ConfigError if the file is not one of ours."""
    path = checkpoint_path(run_or_ckpt)
    try:
        ckpt = torch.load(path, map_location=map_location, weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, zipfile.BadZipFile, ValueError,
            AttributeError) as exc:
        raise ConfigError(f"{path}: not a datagen checkpoint (torch.load failed: "
                          f"{str(exc).splitlines()[0][:120]}); give RUN_DIR or RUN_DIR/ckpt/*.pt "
                          "from `datagen train`") from None
    if not isinstance(ckpt, dict) or ckpt.get("format") != CKPT_FORMAT:
        raise ConfigError(f"{path}: a torch file, but not a datagen checkpoint (no format "
                          f"{CKPT_FORMAT!r}); give RUN_DIR or RUN_DIR/ckpt/*.pt from `datagen train`")
    if ckpt.get("version") != CKPT_VERSION:
        raise ConfigError(f"{path}: checkpoint version {ckpt.get('version')}, this datagen reads "
                          f"{CKPT_VERSION}; retrain, or use the datagen that wrote it")
    return ckpt, path


def save_checkpoint(run_dir: Path, state: dict, keep_step_file: bool = True) -> Path:
    """Write ckpt/step_NNNNNN.pt (if ``keep_step_file``) and ckpt/last.pt atomically."""
    folder = run_dir / "ckpt"
    folder.mkdir(parents=True, exist_ok=True)
    state = {"format": CKPT_FORMAT, "version": CKPT_VERSION, **state}
    tmp = folder / f".last.pt.{os.getpid()}"
    torch.save(state, tmp)
    if keep_step_file:
        step_file = folder / f"step_{state['step']:06d}.pt"
        step_tmp = folder / f".{step_file.name}.{os.getpid()}"
        torch.save(state, step_tmp)
        os.replace(step_tmp, step_file)
    os.replace(tmp, folder / "last.pt")
    return folder / "last.pt"
