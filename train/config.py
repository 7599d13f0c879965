"""The training recipe shared by LOSO (`train.loso`) and the default-model fit (`train.fit`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from epir_core.config import EPIRConfig

SELECTIONS = ("last", "val", "oracle")
PRECISIONS = ("fp32", "tf32", "bf16")  # tf32 / bf16 act on CUDA only (TF32 matmuls / bf16 autocast)
SCHEDULES = ("constant", "cosine")
SELECTION_NOTES = {
    "last": "honest: fixed epoch budget, last weights; the held-out subject is never looked at while training",
    "val": "honest: epoch chosen by accuracy on a validation split of the training subjects (stratified by data set)",
    "inner-val-config": "honest: per fold, the configuration (python -m train.results select) whose kept weights "
    "scored best on that fold's inner-validation subjects; each chose its epoch there too, or used a fixed budget",
    "oracle": "ORACLE (HTNet protocol): epoch chosen by accuracy on the held-out test subject; test-set "
    "selection inflates the scores and is only for comparison with published numbers",
}


@dataclass(frozen=True)
class TrainConfig:
    preset: str = "epir"  # model preset (every ablation row of Table 4 is one)
    epochs: int = 300  # paper: 300 per data set
    batch_size: int = 256  # paper
    lr: float = 5e-5  # paper, Adam
    shuffle: bool = True  # reshuffle every epoch (HTNet did not shuffle; the paper does not say)
    selection: str = "last"  # last | val | oracle, see SELECTION_NOTES
    val_fraction: float = 0.15  # share of training subjects held back per data set when selection == "val"
    precision: str = "tf32"  # fp32 | tf32 | bf16, see PRECISIONS; the loss is always computed in fp32
    model: dict = field(default_factory=dict)  # EPIRConfig fields overriding the preset (e.g. dropout, drop_path)
    # Generalisation across subjects (issue 12). Each is off by default: the default is the paper's recipe.
    flip: bool = False  # mirror half the training inputs, u -> 1 - u (train.augment explains why that is exact)
    rotate: float = 0.0  # rotate training inputs by up to +-this many degrees, (u, v) vectors with the maps
    mixup: float = 0.0  # alpha of Beta(alpha, alpha) mixup of training inputs and their targets; 0 = off
    label_smoothing: float = 0.0  # share of each target spread evenly over the classes
    weight_decay: float = 0.0  # decoupled (AdamW) on every weight; 0 is the paper's plain Adam
    ema: float = 0.0  # decay of an exponential moving average of the weights, which are then selected, evaluated and saved
    class_balance: bool = False  # weight CE by the inverse class frequency of the fold's training samples
    schedule: str = "constant"  # constant | cosine (learning rate decays to 0 over the run, step by step)
    tta_flip: bool = False  # evaluate on the input and its mirror, averaging the logits
    calibrate: bool = False  # fit a temperature per fold on inner-validation subjects (held back from training)

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, not {self.selection!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs and batch size must be >= 1 and the learning rate > 0")
        if self.needs_val and not 0 < self.val_fraction < 1:
            raise ValueError("val_fraction must lie in (0, 1)")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"schedule must be one of {SCHEDULES}, not {self.schedule!r}")
        if not (0 <= self.label_smoothing < 1 and 0 <= self.ema < 1 and self.weight_decay >= 0 and self.mixup >= 0):
            raise ValueError("label smoothing and EMA decay must lie in [0, 1), weight decay and mixup alpha be >= 0")
        if not 0 <= self.rotate <= 180:
            raise ValueError(f"rotate must lie in [0, 180] degrees, not {self.rotate}")
        unknown = set(self.model) - {f.name for f in fields(EPIRConfig)} | ({"num_classes"} & set(self.model))
        if unknown:
            raise ValueError(f"model overrides name no settable EPIRConfig field: {sorted(unknown)}")

    @property
    def needs_val(self) -> bool:
        """Whether each fold holds back inner-validation subjects (for epoch selection or calibration)."""
        return self.selection == "val" or self.calibrate

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**d)
