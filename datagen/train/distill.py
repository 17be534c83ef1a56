"""Knowledge distillation: a large trained model (the teacher) into a small one (the student).

    student, ckpt = distill(teacher, run_config, (8, 16, 32), steps=2000, out="DIR/student",
                            store="storage/racing.zarr")

The student is a fresh ``TemporalUpscaler`` with the given U-Net widths, trained on
the store's train split with the teacher's run config (batch, window, crop, loss)
and, added to that loss, ``weight`` x L1 between its tonemapped output and the
teacher's on the same window (``datagen.train.tune``). The teacher runs in eval
mode without gradients. The student's run folder is an ordinary one (``ckpt/last.pt``,
``config.json`` naming the teacher), so ``datagen eval`` and ``datagen export-model``
take it.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from datagen.train.model import TemporalUpscaler


def distill(teacher: TemporalUpscaler, run_config: dict, channels: tuple[int, ...], steps: int, out: str,
            store: str, weight: float = 1.0, checkpoint: str = "", device: str = "auto",
            lr: float | None = None,
            progress=lambda step, record: None) -> tuple[TemporalUpscaler, str]:
    """Train a student of ``channels`` widths from ``teacher`` (module docstring) at peak
    ``lr`` (default: the teacher's run's). Returns (the student, its checkpoint path)."""
    from datagen.train.trainer import TrainConfig
    from datagen.train.tune import tune

    config = TrainConfig.from_json(run_config)
    student = TemporalUpscaler(dataclasses.replace(teacher.config, channels=tuple(channels)))
    lr = config.lr if lr is None else lr
    tune(student, store, out, steps, config, lr=lr, teacher=teacher, distill=weight, device=device,
         progress=progress, derived_from={"checkpoint": checkpoint, "teacher_channels":
                                          list(teacher.config.channels)})
    return student.cpu().eval(), str(Path(out) / "ckpt" / "last.pt")
