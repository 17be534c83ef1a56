"""The trainer: fit ``TemporalUpscaler`` on a store's train split. Reads top to bottom:
config -> device -> data -> model -> optimiser -> loop (log, checkpoint).

    from datagen.train.trainer import TrainConfig, train
    train(TrainConfig(store="storage/racing.zarr", out="runs/r1", steps=20000))

Stages (``--stage single|temporal|finetune``, ``--init RUN``) and their lineage in
run.json: ``stages``; the optional perceptual and adversarial terms: ``losses``;
``--preset cpu``: ``PRESETS``.

Run folder (SPEC §3): config.json (the resolved TrainConfig), run.json, metrics.jsonl (one
JSON object per logged step: step, loss, lr, samples_per_s, data_wait_frac, the
loss terms, grad_norm), ckpt/step_NNNNNN.pt and ckpt/last.pt, and tb/ (TensorBoard
scalars and image grids) when tensorboard is installed.

Bad data stops a run with one line (``BadDataError``: store, split, sequence, frame),
or with ``skip_bad_windows`` is passed over, warned about and counted
(``bad_windows_skipped`` in metrics.jsonl and the summary). A non-finite loss or
gradient stops the run before the optimiser step (``NonFiniteLossError`` naming the
step); the checkpoints already written, the last good ones, are kept.

Determinism: the model's initial weights come from ``seed``; the data order from
(seed, epoch) through a DistributedSampler; crops and flips from (seed, epoch,
item). A checkpoint holds the step, model, optimiser, scheduler and RNG states, so
``resume=True`` continues exactly where the run stopped: N steps in one go and
N/2 + resume N/2 give the same weights (on the same device and thread count).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from datagen.errors import ConfigError, DatagenError, NonFiniteLossError
from datagen.train.checkpoint import load_checkpoint, save_checkpoint
from datagen.train.data import EpochSampler, WindowDataset, model_jitter
from datagen.train.losses import ExtraLosses
from datagen.train.metrics import TONEMAP, LossWeights, loss_terms, tonemap
from datagen.train.model import ModelConfig, TemporalUpscaler, parameter_count, upsample_jittered
from datagen.train.stages import (
    STAGES,
    HardSamples,
    load_parent,
    mine_hard_windows,
    read_run_json,
    write_run_json,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    """Everything a run depends on; saved as RUN_DIR/config.json and in every checkpoint."""

    store: str
    """path of the store (made by ``datagen build``)."""
    out: str = "runs/latest"
    """run folder."""
    split: str = "train"
    steps: int = 2000
    """total optimiser steps of the run (a resumed run continues to this)."""
    batch: int = 8
    window: int | None = None
    """K: consecutive frames per item, trained recurrently; default 8, and 1 for the single stage."""
    crop: int = 128
    """HR crop side in pixels (a multiple of the store's crop step)."""
    lr: float = 1e-3
    """peak learning rate of AdamW."""
    warmup: int | None = None
    """linear warm-up steps, then cosine decay to 0 at ``steps``; default min(100, steps // 10)."""
    weight_decay: float = 1e-4
    clip: float = 1.0
    """gradient norm clip."""
    loss: LossWeights = field(default_factory=LossWeights)
    channels: tuple[int, ...] = (32, 64, 128)
    """U-Net widths per level."""
    rectify: bool = False
    """the model's history rectification input (``ModelConfig.rectify``)."""
    seed: int = 0
    device: str = "auto"
    """auto (CUDA when present), cuda or cpu."""
    compile: bool = False
    """torch.compile the model."""
    num_workers: int = 2
    """DataLoader worker processes (0: load in this process)."""
    augment: bool = True
    """random flips (motion and jitter flipped with the image)."""
    log_every: int = 1
    ckpt_every: int = 500
    """checkpoint (and TensorBoard image grid) every this many steps, and at the end."""
    skip_bad_windows: bool = False
    """pass over windows with NaN/inf values (counted and warned about) instead of stopping."""
    stage: str = "temporal"
    """single (one-frame windows, no history), temporal (recurrent) or finetune (the hardest
    windows under the initial model; needs ``init``): see ``stages``."""
    init: str | None = None
    """run folder or checkpoint file whose weights the run starts from (not its optimiser or step)."""
    hard_fraction: float = 0.25
    """finetune: the fraction of the split's windows, hardest first, trained on."""
    perceptual_weights: str | None = None
    """VGG16 weights file for the perceptual term (``losses``); needed when ``loss.perceptual`` > 0."""

    def to_json(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(f"unknown train config field(s) {sorted(unknown)}; valid: {sorted(known)}")
        data = dict(data)
        if "loss" in data:
            data["loss"] = LossWeights(**data["loss"])
        if "channels" in data:
            data["channels"] = tuple(data["channels"])
        return cls(**data)

    def resolved(self) -> TrainConfig:
        """The defaults that depend on other fields filled in: ``window``, ``warmup``."""
        window = self.window if self.window is not None else (1 if self.stage == "single" else 8)
        warmup = self.warmup if self.warmup is not None else min(100, self.steps // 10)
        return dataclasses.replace(self, window=window, warmup=warmup)

    def check(self) -> None:
        """ConfigError naming the first bad field (of a ``resolved`` config)."""
        for name in ("steps", "batch", "window", "crop", "log_every", "ckpt_every"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1; got {getattr(self, name)}")
        if self.device not in ("auto", "cuda", "cpu"):
            raise ConfigError(f"--device {self.device!r}: use auto, cuda or cpu")
        if not math.isfinite(self.lr) or self.lr <= 0 or self.warmup < 0 or self.num_workers < 0 \
                or not self.channels:
            raise ConfigError("lr must be a finite number > 0, warmup and num_workers >= 0, channels "
                              "not empty")
        weights = dataclasses.asdict(self.loss)
        if not all(math.isfinite(w) and w >= 0 for w in weights.values()):
            raise ConfigError(f"loss weights must be finite and >= 0; got {weights}")
        if self.stage not in STAGES:
            raise ConfigError(f"--stage {self.stage!r}: use one of {', '.join(STAGES)}")
        if self.stage == "single" and self.window != 1:
            raise ConfigError(f"--stage single trains on one-frame windows; drop --window {self.window}")
        if self.stage == "finetune" and not self.init:
            raise ConfigError("--stage finetune needs --init RUN: the run whose model mines the hard "
                              "windows and is fine-tuned")
        if not 0 < self.hard_fraction <= 1:
            raise ConfigError(f"--hard-fraction {self.hard_fraction}: must be in (0, 1]")


PRESETS: dict[str, dict] = {
    "cpu": {"channels": (16, 32, 64), "crop": 48, "batch": 4, "window": 4, "steps": 300, "lr": 2e-3,
            "ckpt_every": 100},
}
"""Named starting points for TrainConfig; ``cpu``: a small model that trains in minutes on a CPU."""


def preset(name: str, **fields) -> TrainConfig:
    """TrainConfig from preset ``name`` ("" for none), with ``fields`` over it."""
    if name and name not in PRESETS:
        raise ConfigError(f"--preset {name!r}: use one of {', '.join(PRESETS)}")
    values = dict(PRESETS.get(name, {}))
    if fields.get("stage") == "single":
        values.pop("window", None)  # the single stage's window is 1
    return TrainConfig(**{**values, **fields})


def cpu_warning(config: TrainConfig, device: torch.device) -> str | None:
    """What to say when the full-size default model is about to train on a CPU."""
    full = TrainConfig(store="")
    if device.type != "cpu" or config.channels != full.channels or config.crop < full.crop:
        return None
    return (f"training the full-size model (channels {','.join(map(str, config.channels))}, crop "
            f"{config.crop}) on the CPU takes hours; `--preset cpu` (make train PRESET=cpu) trains a "
            "small model in minutes")


# -- device --------------------------------------------------------------------------------------


def resolve_device(name: str) -> torch.device:
    """auto -> cuda if available else cpu; cuda without a GPU is a ConfigError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: torch sees no CUDA device here; use --device cpu or auto")
    return torch.device(name)


def autocast_dtype(device: torch.device) -> torch.dtype | None:
    """bf16 autocast on CUDA; full fp32 on CPU (CPU runs are smoke tests)."""
    return torch.bfloat16 if device.type == "cuda" else None


def autocast(device: torch.device):
    dtype = autocast_dtype(device)
    return torch.autocast(device.type, dtype=dtype) if dtype else contextlib.nullcontext()


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last on CUDA (tensor cores want NHWC); the default layout on CPU."""
    return torch.channels_last if device.type == "cuda" else torch.contiguous_format


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up over ``warmup`` steps, then cosine from 1 to 0 at ``total``."""
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


# -- data ----------------------------------------------------------------------------------------


def batches(ds: WindowDataset, config: TrainConfig, start_step: int, device: torch.device,
            rank: int = 0, world: int = 1) -> Iterator[dict[str, torch.Tensor]]:
    """Batches from step ``start_step`` on, forever: epoch e visits the DistributedSampler's
    permutation for (seed, e), dropping the last partial batch; a resumed run skips
    the batches of the current epoch it already saw, so the order is as if it never stopped."""
    sampler = EpochSampler(ds, config.batch, config.seed, start_step, rank, world)
    loader = DataLoader(ds, batch_size=config.batch, sampler=sampler, num_workers=config.num_workers,
                        pin_memory=device.type == "cuda", persistent_workers=config.num_workers > 0)
    try:
        yield from loader
    except DatagenError as exc:  # raised in a worker: torch wraps its traceback into the message
        error = type(exc)(worker_message(exc))
    loader = None  # the persistent workers stop now, cleanly, not killed mid-read at exit
    raise error from None


def worker_message(exc: Exception) -> str:
    """The one-line message of an error a DataLoader worker raised. torch re-raises it in
    this process with "Caught X in DataLoader worker process N. Original Traceback: ..."
    as the message; the original message is the traceback's last line, after "Type: "."""
    text = str(exc)
    if "Original Traceback" not in text:
        return text
    last = text.rstrip().splitlines()[-1]
    return last.split(": ", 1)[1] if ": " in last else last


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


def run_model(model, batch: dict[str, torch.Tensor], ratio: tuple[float, float]) -> torch.Tensor:
    """The model over a batch's window: (B, K, 3, H, W) linear HDR, at the store's exact
    HR / LR ``ratio`` (x, y), with the crop's LR offset taken out of the jitter."""
    return model(batch["color_lr"], batch["depth_lr"], batch["motion_lr"], model_jitter(batch),
                 batch["exposure"], batch["camera_cut"], hr_size=tuple(batch["color_hr"].shape[-2:]),
                 ratio=ratio)


# -- logging -------------------------------------------------------------------------------------


class RunLog:
    """metrics.jsonl plus TensorBoard when installed. On resume, lines past the
    checkpoint's step are dropped so the file reads as one run."""

    def __init__(self, run_dir: Path, start_step: int):
        self.path = run_dir / "metrics.jsonl"
        if start_step and self.path.exists():
            kept = [line for line in self.path.read_text().splitlines()
                    if line.strip() and json.loads(line)["step"] <= start_step]
            self.path.write_text("".join(line + "\n" for line in kept))
        elif self.path.exists():
            self.path.unlink()
        self.file = self.path.open("a")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(run_dir / "tb"), purge_step=start_step or None)
        except ImportError:  # tensorboard is optional: metrics.jsonl has everything
            self.tb = None

    def scalars(self, record: dict) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tb:
            for key, value in record.items():
                if key != "step":
                    self.tb.add_scalar(f"train/{key}", value, record["step"])

    def images(self, step: int, batch: dict[str, torch.Tensor], out: torch.Tensor,
               ratio: tuple[float, float]) -> None:
        """Last frame of the first item: LR upsampled | output | reference, tonemapped."""
        if not self.tb:
            return
        e = batch["exposure"][:1, -1]
        hr = out.shape[-2:]
        up = upsample_jittered(batch["color_lr"][:1, -1], hr, ratio, model_jitter(batch)[:1, -1])
        row = [tonemap(x.float(), e)[0] for x in (up, out[:1, -1], batch["color_hr"][:1, -1])]
        self.tb.add_image("train/lr_up|output|reference", torch.cat(row, dim=-1).clamp(0, 1), step)

    def close(self) -> None:
        self.file.close()
        if self.tb:
            self.tb.close()


# -- the run -------------------------------------------------------------------------------------


def train(config: TrainConfig, resume: bool = False, stop_after: int | None = None,
          progress: Callable[[int, dict], None] = lambda step, record: None) -> dict:
    """Train (or with ``resume`` continue from RUN_DIR/ckpt/last.pt) up to ``config.steps``;
    ``stop_after`` ends this call after that many steps, with a checkpoint, as a
    pre-empted job would. Returns a summary: run_dir, step, loss, device, parameters."""
    config = config.resolved()
    config.check()
    run_dir = Path(config.out)
    ckpt = None
    if resume:
        if not (run_dir / "ckpt" / "last.pt").is_file():
            raise ConfigError(f"--resume: {run_dir} has no checkpoint (ckpt/last.pt) to continue from; "
                              "drop --resume to start a new run, or give the run's --out")
        ckpt, _ = load_checkpoint(run_dir)
        saved = TrainConfig.from_json(ckpt["config"]).resolved()
        config = dataclasses.replace(saved, steps=config.steps, device=config.device,
                                     num_workers=config.num_workers, compile=config.compile,
                                     skip_bad_windows=config.skip_bad_windows)
    device = resolve_device(config.device)
    parent, lineage = load_parent(config.init) if config.init and ckpt is None else (None, {})
    if parent is not None:  # the parent's architecture, whatever --channels and --rectify say
        config = dataclasses.replace(config, channels=tuple(parent["model_config"]["channels"]),
                                     rectify=parent["model_config"].get("rectify", False))
    torch.manual_seed(config.seed)

    ds = WindowDataset(config.store, config.split, config.window, config.crop, config.augment, config.seed,
                       skip_bad=config.skip_bad_windows)
    model = TemporalUpscaler(ModelConfig(scale=ds.scale, channels=config.channels, rectify=config.rectify))
    extra = ExtraLosses(config.loss.perceptual, config.perceptual_weights, config.loss.adversarial,
                        config.lr, device)  # after the model: its initial weights do not depend on these
    for source in (ckpt, parent):
        if source is not None and source["model_config"]["scale"] != ds.scale:
            raise ConfigError(f"{config.store}: scale {ds.scale:g}, the checkpoint was trained at "
                              f"{source['model_config']['scale']:g}")
    if parent is not None:
        model.load_state_dict(parent["model"])
    model.to(device, memory_format=memory_format(device))
    forward = torch.compile(model) if config.compile else model
    opt = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: lr_factor(s, config.warmup, config.steps))
    start = 0
    if ckpt is not None:
        model.load_state_dict(ckpt["model"])
        opt.load_state_dict(ckpt["optimizer"])
        sched.load_state_dict(ckpt["scheduler"])
        extra.load_state_dict(ckpt.get("extra_losses", {}))
        torch.set_rng_state(ckpt["rng"]["torch"])
        if device.type == "cuda" and ckpt["rng"].get("cuda"):
            torch.cuda.set_rng_state_all(ckpt["rng"]["cuda"])
        start = ckpt["step"]

    def run_window(net, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        with autocast(device):
            return run_model(net, batch, ds.ratio).float()

    train_set = ds
    run_record = read_run_json(run_dir) if ckpt is not None else {}
    if config.stage == "finetune":
        if "hard_windows" not in run_record:  # a new run: mine them under the initial model
            mining = WindowDataset(config.store, config.split, config.window, config.crop, False,
                                   config.seed, skip_bad=config.skip_bad_windows)
            run_record["hard_windows"] = mine_hard_windows(model, mining, config.loss, config.hard_fraction,
                                                           run_window, device, config.batch)
            log.info("fine-tuning on the %d hardest of %d windows", len(run_record["hard_windows"]),
                     len(mining))
        train_set = HardSamples(ds, [w["index"] for w in run_record["hard_windows"]])
    run_dir.mkdir(parents=True, exist_ok=True)
    if ckpt is None:
        run_record = {"stage": config.stage, "parent": lineage.get("parent"),
                      "lineage": lineage.get("lineage", []), **run_record}
        write_run_json(run_dir, run_record)
    (run_dir / "config.json").write_text(json.dumps(
        {**config.to_json(), "model": dataclasses.asdict(model.config), "tonemap": TONEMAP,
         "device_resolved": str(device), "autocast": str(autocast_dtype(device)),
         "parameters": parameter_count(model)}, indent=2) + "\n")
    if warning := cpu_warning(config, device):  # once the run is sure to start
        log.warning(warning)
    log.info("training %d parameters on %s from step %d to %d (stage %s)", parameter_count(model), device,
             start, config.steps, config.stage)

    last_ckpt = {"step": start if ckpt is not None else None}

    def checkpoint(step: int) -> None:
        last_ckpt["step"] = step
        save_checkpoint(run_dir, {
            "step": step, "config": config.to_json(), "model_config": dataclasses.asdict(model.config),
            "model": model.state_dict(), "optimizer": opt.state_dict(), "scheduler": sched.state_dict(),
            "extra_losses": extra.state_dict(),
            "rng": {"torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if device.type == "cuda" else []}})

    runlog = RunLog(run_dir, start)
    end = config.steps if stop_after is None else min(config.steps, start + stop_after)
    data = batches(train_set, config, start, device)
    done, record, skipped = start, {}, 0
    window = {"seconds": 0.0, "wait": 0.0, "samples": 0}
    try:
        model.train()
        for step in range(start + 1, end + 1):
            t0 = time.perf_counter()
            batch = next(data)
            waited = time.perf_counter() - t0
            skipped += int(batch.pop("skipped", torch.zeros(1)).sum())
            batch = to_device(batch, device)
            out = run_window(forward, batch)
            loss, terms = loss_terms(out, batch, config.loss)
            extra_loss, extra_terms = extra(out, batch)  # perceptual, adversarial: 0 when off
            loss = loss + extra_loss
            opt.zero_grad(set_to_none=True)
            loss.backward()
            grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), config.clip)
            if not bool(torch.isfinite(loss) & torch.isfinite(grad_norm)):  # weights stay as they were
                raise NonFiniteLossError(non_finite_message(step, loss, grad_norm, run_dir,
                                                            last_ckpt["step"]))
            lr = sched.get_last_lr()[0]
            opt.step()
            sched.step()
            extra_terms |= extra.train_discriminator(out, batch)  # after the model's step, as in GANs
            loss_value = loss.item()  # waits for the GPU, so the step time below is real
            done = step
            window["seconds"] += time.perf_counter() - t0
            window["wait"] += waited
            window["samples"] += config.batch
            if step % config.log_every == 0 or step == end:
                record = {"step": step, "loss": loss_value, "lr": lr,
                          "samples_per_s": window["samples"] / window["seconds"],
                          "data_wait_frac": window["wait"] / window["seconds"],
                          **terms, **extra_terms, "grad_norm": float(grad_norm),
                          "bad_windows_skipped": skipped}
                runlog.scalars(record)
                progress(step, record)
                window = {"seconds": 0.0, "wait": 0.0, "samples": 0}
            if step % config.ckpt_every == 0 or step == end:
                checkpoint(step)
                runlog.images(step, batch, out.detach(), ds.ratio)
    except KeyboardInterrupt:
        if done > start:
            checkpoint(done)  # resume from where it was stopped
        raise
    finally:
        runlog.close()
        data.close()
    return {"run_dir": str(run_dir), "step": done, "loss": record.get("loss"), "device": str(device),
            "parameters": parameter_count(model), "finished": done >= config.steps,
            "bad_windows_skipped": skipped, "stage": config.stage}


def non_finite_message(step: int, loss: torch.Tensor, grad_norm: torch.Tensor, run_dir: Path,
                       last_saved: int | None) -> str:
    """The one line a run stops with when its loss or gradient is not finite."""
    kept = (f"the last good checkpoint, {run_dir / 'ckpt' / 'last.pt'} (step {last_saved}), is kept"
            if last_saved is not None else "no checkpoint was written yet")
    return (f"step {step}: the loss is {loss.item():g} and the gradient norm {grad_norm.item():g}; "
            f"stopped before the optimiser step, {kept}. Check the store with `datagen validate`, or "
            "lower --lr")
