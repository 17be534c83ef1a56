"""Short training of a derived model: fine-tuning after pruning, and distillation.

    tune(student, "storage/racing.zarr", "DIR/pruned", steps=300, like=run_config)
    tune(small, store, "DIR/student", steps=2000, like=run_config, teacher=big)

One plain loop on the store's train split, with the loss of the run the model came
from (``like``: its TrainConfig, whose batch, window, crop and loss weights are
reused) and AdamW at ``lr`` with a linear warm-up and cosine decay. With a
``teacher`` the loss adds ``distill`` x L1 between the tonemapped outputs of the
student and of the teacher on the same window (Hinton et al.'s soft targets, for
regression): the teacher's output is a smoother target than the reference, and it
carries the temporal behaviour the teacher learned.

The result is an ordinary run folder: ``ckpt/last.pt`` (a checkpoint ``datagen
eval`` and ``datagen export-model`` read), ``config.json`` (the TrainConfig used,
plus what the model was derived from) and ``metrics.jsonl``. Steps run in
channels_last on CUDA, as in the trainer.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import torch

from datagen.train import trainer
from datagen.train.checkpoint import save_checkpoint
from datagen.train.data import WindowDataset
from datagen.train.metrics import loss_terms, tonemap
from datagen.train.model import TemporalUpscaler, parameter_count
from datagen.train.trainer import TrainConfig, autocast, lr_factor, memory_format, resolve_device

TUNE_LR = 5e-4
"""peak learning rate of a fine-tune (pruning) unless the caller gives one."""


def tune(model: TemporalUpscaler, store: str, out: str, steps: int, like: TrainConfig, lr: float = TUNE_LR,
         teacher: TemporalUpscaler | None = None, distill: float = 1.0, device: str = "auto",
         derived_from: dict | None = None,
         progress: Callable[[int, dict], None] = lambda step, record: None) -> dict:
    """Train ``model`` for ``steps`` steps (module docstring); returns the last record
    and the run folder."""
    config = dataclasses.replace(like, store=str(store), out=str(out), steps=steps, lr=lr,
                                 warmup=max(1, steps // 10), channels=tuple(model.config.channels),
                                 device=device, num_workers=0, compile=False)
    dev = resolve_device(device)
    torch.manual_seed(config.seed)
    ds = WindowDataset(config.store, config.split, config.window, config.crop, config.augment, config.seed)
    g = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(ds, batch_size=min(config.batch, len(ds)), shuffle=True,
                                         generator=g, drop_last=True)
    model.to(dev, memory_format=memory_format(dev)).train()
    if teacher is not None:
        teacher.to(dev, memory_format=memory_format(dev)).eval()
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, config.warmup, steps))
    run_dir = Path(out)
    run_dir.mkdir(parents=True, exist_ok=True)
    log = (run_dir / "metrics.jsonl").open("w")
    step, epoch, record = 0, 0, {}
    try:
        while step < steps:
            ds.set_epoch(epoch)  # new crops and flips each pass
            epoch += 1
            for batch in loader:
                if step >= steps:
                    break
                step += 1
                batch = trainer.to_device(batch, dev)
                with autocast(dev):
                    out_hr = trainer.run_model(model, batch, ds.ratio)
                loss, terms = loss_terms(out_hr.float(), batch, config.loss)
                if teacher is not None:
                    with torch.no_grad(), autocast(dev):
                        target = trainer.run_model(teacher, batch, ds.ratio).float()
                    e = batch["exposure"]
                    soft = (tonemap(out_hr.float(), e) - tonemap(target, e)).abs().mean()
                    loss = loss + distill * soft
                    terms["distill"] = soft.item()
                opt.zero_grad(set_to_none=True)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
                opt.step()
                sched.step()
                record = {"step": step, "loss": loss.item(), **terms}
                log.write(json.dumps(record) + "\n")
                log.flush()
                progress(step, record)
    finally:
        log.close()
    model.eval().to(memory_format=torch.contiguous_format)
    save_checkpoint(run_dir, {
        "step": step, "config": config.to_json(), "model_config": dataclasses.asdict(model.config),
        "model": {k: v.contiguous() for k, v in model.state_dict().items()},
        "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
        "rng": {"torch": torch.get_rng_state(), "cuda": []}}, keep_step_file=False)
    (run_dir / "config.json").write_text(json.dumps(
        {**config.to_json(), "model": dataclasses.asdict(model.config), "parameters": parameter_count(model),
         "derived_from": derived_from or {}, "distill": distill if teacher is not None else 0.0},
        indent=2) + "\n")
    return {"run_dir": str(run_dir), "step": step, **record}
