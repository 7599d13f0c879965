"""Train a group of LOSO folds as ONE batched computation.

Every fold has its own model, but all models share one architecture, so their parameters are
stacked along a leading fold axis (G) and the forward pass is `vmap`-ed over that axis: G folds
cost one set of kernel launches instead of G. Each fold draws its own batch; batches are padded to
a common size P and a `valid` mask keeps the padding out of the loss (the model treats every
sample independently, so padding cannot leak into real rows).

One Adam over the stacked parameters with loss = sum of the per-fold losses is exactly G
independent Adams: the gradient of the sum w.r.t. fold g's slice is fold g's own gradient, and
Adam is elementwise. This needs every fold to step at every step, which `group_folds` guarantees.
The same holds for the optional extras (decoupled weight decay, a learning-rate schedule shared by
all folds, EMA of the weights): all elementwise or common to every fold.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.func import functional_call, stack_module_state, vmap

from epir_core import build_model
from epir_core.calibration import calibrated_probabilities
from epir_core.loss import epir_loss
from epir_core.metrics import uf1
from epir_core.model.mirror import hflip
from train.augment import Augmenter
from train.calibration import fold_calibration
from train.config import TrainConfig
from train.folds import Fold, fold_seed

EpochCallback = Callable[[int, np.ndarray], None]  # (1-based epoch, G mean training losses)


@dataclass
class FoldOutcome:
    fold: Fold
    logits: np.ndarray  # n_test x C logits of the selected weights (mean over the mirror pair with tta_flip)
    selected_epoch: int  # 1-based epoch whose weights were kept
    final_loss: float  # mean training loss over the last epoch
    state_dict: dict[str, torch.Tensor]  # the selected weights, on the CPU
    temperature: float = 1.0  # fitted on the fold's inner-validation subjects with cfg.calibrate, else 1
    val: dict | None = None  # the selected weights on the inner-validation subjects (None without them)

    @property
    def probs(self) -> np.ndarray:
        """n_test x C softmax probabilities, uncalibrated."""
        return calibrated_probabilities(self.logits)

    @property
    def calibrated_probs(self) -> np.ndarray:
        return calibrated_probabilities(self.logits, self.temperature)


class _WithFeatures(nn.Module):
    """Makes forward_with_features the module's forward, which is what functional_call calls."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.forward_with_features(x)  # B x C logits, B x 256 features


class _Stack:
    """G models of one architecture as parameters stacked on a leading fold axis, run by one
    vmapped call: (G x P x 3 x 28 x 28) -> G x P x C logits, G x P x 256 features."""

    def __init__(self, models: list[nn.Module], device: torch.device, precision: str, tta_flip: bool = False):
        stacked, buffers = stack_module_state([_WithFeatures(m) for m in models])  # name -> G x ...
        self.params = {k: v.detach().to(device).requires_grad_() for k, v in stacked.items()}
        self.buffers = {k: v.to(device) for k, v in buffers.items()}
        self.base = _WithFeatures(models[0]).to(device)  # the architecture; its own tensors are never used
        self.config = models[0].config
        self.device = device
        self.bf16 = precision == "bf16" and device.type == "cuda"
        self.tta_flip = tta_flip
        self._batched = vmap(self._one, randomness="different")

    def _one(self, params: dict, buffers: dict, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return functional_call(self.base, (params, buffers), (x,))

    def __call__(self, x: torch.Tensor, params: dict | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.bf16):
            return self._batched(self.params if params is None else params, self.buffers, x)

    def train(self, mode: bool) -> None:
        self.base.train(mode)

    @torch.no_grad()
    def predict(self, x_all: torch.Tensor, index_lists: list[np.ndarray], params: dict | None = None) -> list[np.ndarray]:
        """Logits (n_g x C per fold) of each fold's model on its own samples; with tta_flip the mean
        of the logits of each input and its mirror."""
        self.train(False)
        idx, _ = _pad(index_lists, x_all.device)
        x = x_all[idx]
        logits = self(x, params)[0].float()  # G x P x C
        if self.tta_flip:
            logits = (logits + self(hflip(x), params)[0].float()) / 2
        logits = logits.cpu().numpy()
        return [logits[g, : len(i)] for g, i in enumerate(index_lists)]

    def fold_state(self, g: int, params: dict | None = None) -> dict[str, torch.Tensor]:
        """Fold g's slice as a state dict of the bare model (the wrapper's "model." prefix removed)."""
        tensors = {**(self.params if params is None else params), **self.buffers}
        return {k.removeprefix("model."): v[g].detach().cpu().clone() for k, v in tensors.items()}


def init_model(cfg: TrainConfig, num_classes: int, seed: int) -> nn.Module:
    """The fold's initial model: seeded on the CPU, so CPU and GPU runs start identically."""
    torch.manual_seed(seed)
    return build_model(preset=cfg.preset, num_classes=num_classes, **cfg.model)


def train_group(
    folds: list[Fold],
    inputs: np.ndarray,  # N x 3 x 28 x 28 float32, the whole sample set
    labels: np.ndarray,  # N int64
    num_classes: int,
    cfg: TrainConfig,
    seed: int,
    device: torch.device,
    on_epoch: EpochCallback | None = None,
) -> list[FoldOutcome]:
    """Train every fold of the group for cfg.epochs and return each fold's selected weights and
    its held-out predictions. The folds must share the number of steps per epoch (group_folds)."""
    steps = folds[0].steps_per_epoch(cfg.batch_size)
    if any(f.steps_per_epoch(cfg.batch_size) != steps for f in folds):
        raise ValueError("folds trained together must take the same number of steps per epoch; use group_folds")
    if cfg.needs_val and any(len(f.val) == 0 for f in folds):
        raise ValueError("selection 'val' and calibration need inner-validation subjects in every fold (val_fraction)")
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = cfg.precision != "fp32"
    seeds = [fold_seed(seed, f.subject) for f in folds]
    stack = _Stack([init_model(cfg, num_classes, s) for s in seeds], device, cfg.precision, cfg.tta_flip)
    mcfg = stack.config  # the preset's loss terms: the "vit" row trains without L_con

    def fold_loss(lo, fe, y, v, t):
        return epir_loss(lo, fe, y, mcfg.contrastive_margin, v, mcfg.contrastive_weight, t)

    targets_of = _Targets(cfg, folds, labels, num_classes, device)
    # G x P logits / features / labels / valid / targets (or None: CE on the labels) -> G losses
    losses_of = vmap(fold_loss, in_dims=(0, 0, 0, 0, 0 if targets_of.active else None))
    x_all = torch.from_numpy(inputs).to(device)
    y_all = torch.from_numpy(labels).to(device)
    generators = [torch.Generator().manual_seed(s) for s in seeds]
    augmenter = Augmenter(cfg.flip, cfg.rotate, cfg.mixup, seeds)
    torch.manual_seed(seed)  # any random layer in the model draws from here
    optimiser, schedule = _optimiser(cfg, list(stack.params.values()), device, cfg.epochs * steps)
    ema = _EMA(stack.params, cfg.ema) if cfg.ema > 0 else None
    evaluated = ema.params if ema is not None else stack.params  # the weights selected, evaluated, saved

    selector = _Selector(cfg, folds, evaluated, y_all) if cfg.selection != "last" else None
    for epoch in range(1, cfg.epochs + 1):
        stack.train(True)
        epoch_loss = torch.zeros(len(folds), device=device)
        for chunks in _epoch_batches(folds, generators, cfg.batch_size, cfg.shuffle, steps):
            idx, valid = _pad(chunks, device)  # G x P, G x P
            x, targets = x_all[idx], targets_of(idx)
            if augmenter.active:
                x, targets = augmenter.apply(x, targets, augmenter.draw(chunks, idx.shape[1], device))
            logits, feats = stack(x)
            losses = losses_of(logits, feats, y_all[idx], valid, targets)  # G
            optimiser.zero_grad(set_to_none=True)
            losses.sum().backward()
            optimiser.step()
            schedule.step()
            if ema is not None:
                ema.update(stack.params)
            epoch_loss += losses.detach()
        if selector is not None:
            selector.update(epoch, lambda index_lists: stack.predict(x_all, index_lists, evaluated))
        if on_epoch is not None:
            on_epoch(epoch, (epoch_loss / steps).cpu().numpy())

    chosen = selector.best if selector is not None else evaluated
    test_logits = stack.predict(x_all, [f.test for f in folds], chosen)
    val_logits = stack.predict(x_all, [f.val for f in folds], chosen) if cfg.needs_val else None
    final_loss = (epoch_loss / steps).cpu().numpy()
    outcomes = []
    for g, f in enumerate(folds):
        val = _validation_record(val_logits[g], labels[f.val], num_classes, cfg.calibrate) if val_logits is not None else None
        outcomes.append(FoldOutcome(
            fold=f,
            logits=test_logits[g],
            selected_epoch=int(selector.best_epoch[g]) if selector is not None else cfg.epochs,
            final_loss=float(final_loss[g]),
            state_dict=stack.fold_state(g, chosen),
            temperature=val["temperature"] if val else 1.0,
            val=val,
        ))
    return outcomes


def _optimiser(cfg: TrainConfig, params: list[torch.Tensor], device: torch.device, total_steps: int):
    """Adam (the paper's), or AdamW with weight decay; and the learning-rate schedule, stepped per step."""
    fused = device.type == "cuda"
    if cfg.weight_decay > 0:
        optimiser = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=fused)
    else:
        optimiser = torch.optim.Adam(params, lr=cfg.lr, fused=fused)

    def factor(step: int) -> float:
        return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps)) if cfg.schedule == "cosine" else 1.0

    return optimiser, torch.optim.lr_scheduler.LambdaLR(optimiser, factor)


def _validation_record(logits: np.ndarray, labels: np.ndarray, num_classes: int, calibrate: bool) -> dict:
    """The selected weights on the fold's inner-validation subjects: scores (what train.results
    selects configurations by) and, with calibration, the fitted temperature."""
    record = {
        "n": int(len(labels)),
        "accuracy": float(np.mean(logits.argmax(1) == labels)),
        "uf1": uf1(labels, logits.argmax(1), num_classes),
    }
    return record | (fold_calibration(logits, labels) if calibrate else {"temperature": 1.0})


class _Targets:
    """G x P x C CE targets of a batch: one-hot labels, smoothed, times per-fold class weights; None
    when the recipe uses none of these (CE then takes the labels directly)."""

    def __init__(self, cfg: TrainConfig, folds: list[Fold], labels: np.ndarray, num_classes: int, device: torch.device):
        self.active = cfg.label_smoothing > 0 or cfg.mixup > 0 or cfg.class_balance
        self.eye = torch.eye(num_classes, device=device) * (1 - cfg.label_smoothing) + cfg.label_smoothing / num_classes
        weights = np.ones((len(folds), num_classes), dtype=np.float32)
        if cfg.class_balance:  # n / (C n_c): weights average 1 over the fold's training samples
            for g, f in enumerate(folds):
                counts = np.bincount(labels[f.train], minlength=num_classes)
                weights[g] = np.where(counts > 0, len(f.train) / (num_classes * np.maximum(counts, 1)), 0)
        self.weights = torch.from_numpy(weights).to(device)[:, None, :]  # G x 1 x C
        self.labels = torch.from_numpy(labels).to(device)

    def __call__(self, idx: torch.Tensor) -> torch.Tensor | None:
        if not self.active:
            return None
        return self.eye[self.labels[idx]] * self.weights


class _EMA:
    """Exponential moving average of the stacked weights. The decay ramps up as min(decay, (1 + t) /
    (10 + t)) over the t steps taken, so a run of a few hundred steps is not dominated by the
    initial weights."""

    def __init__(self, params: dict, decay: float):
        self.params = {k: v.detach().clone() for k, v in params.items()}
        self.decay = decay
        self.steps = 0

    @torch.no_grad()
    def update(self, params: dict) -> None:
        self.steps += 1
        weight = 1 - min(self.decay, (1 + self.steps) / (10 + self.steps))
        for k, v in params.items():
            self.params[k].lerp_(v.detach(), weight)


class _Selector:
    """Keeps, per fold, the weights of the epoch with the best accuracy on the selection set
    (validation subjects, or the held-out subject under the oracle protocol). Ties go to the later
    epoch, as in HTNet's `<=` comparison."""

    def __init__(self, cfg: TrainConfig, folds: list[Fold], params: dict, y_all: torch.Tensor):
        self.index_lists = [f.val if cfg.selection == "val" else f.test for f in folds]
        if any(len(i) == 0 for i in self.index_lists):
            raise ValueError(f"selection {cfg.selection!r} needs a non-empty selection set in every fold")
        self.targets = [y_all[torch.from_numpy(i).to(y_all.device)].cpu().numpy() for i in self.index_lists]
        self.best = {k: v.detach().clone() for k, v in params.items()}
        self.best_acc = np.full(len(folds), -1.0)
        self.best_epoch = np.zeros(len(folds), dtype=np.int64)
        self.params = params

    def update(self, epoch: int, predict: Callable[[list[np.ndarray]], list[np.ndarray]]) -> None:
        logits = predict(self.index_lists)
        acc = np.array([np.mean(z.argmax(1) == t) for z, t in zip(logits, self.targets)])
        improved = acc >= self.best_acc
        if improved.any():
            mask = torch.from_numpy(improved).to(next(iter(self.best.values())).device)
            for k, v in self.params.items():
                self.best[k][mask] = v.detach()[mask]
            self.best_acc[improved] = acc[improved]
            self.best_epoch[improved] = epoch


def _epoch_batches(folds: list[Fold], generators: list[torch.Generator], batch_size: int, shuffle: bool, steps: int):
    """Yields, per step, each fold's index chunk (the folds share `steps`)."""
    orders = [
        f.train[torch.randperm(len(f.train), generator=g).numpy()] if shuffle else f.train
        for f, g in zip(folds, generators)
    ]
    for s in range(steps):
        yield [o[s * batch_size : (s + 1) * batch_size] for o in orders]


def _pad(chunks: list[np.ndarray], device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-fold index lists -> G x P indices (padding points at sample 0) and G x P valid mask."""
    width = max(1, max(len(c) for c in chunks))  # >= 1 so that a fold without test samples still runs
    idx = np.zeros((len(chunks), width), dtype=np.int64)
    valid = np.zeros((len(chunks), width), dtype=bool)
    for g, c in enumerate(chunks):
        idx[g, : len(c)] = c
        valid[g, : len(c)] = True
    return torch.from_numpy(idx).to(device), torch.from_numpy(valid).to(device)


def fold_model(cfg: TrainConfig, num_classes: int, state_dict: dict[str, torch.Tensor]) -> nn.Module:
    """A plain model holding one fold's weights (for checkpoints)."""
    model = build_model(preset=cfg.preset, num_classes=num_classes, **cfg.model)
    model.load_state_dict(state_dict)
    return model.eval()
