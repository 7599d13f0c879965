"""The training recipe shared by LOSO (`train.loso`) and the default-model fit (`train.fit`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields

from epir_core.config import EPIRConfig

SELECTIONS = ("last", "val", "oracle")
PRECISIONS = ("fp32", "tf32", "bf16")  # tf32 / bf16 act on CUDA only (TF32 matmuls / bf16 autocast)
SELECTION_NOTES = {
    "last": "honest: fixed epoch budget, last weights; the held-out subject is never looked at while training",
    "val": "honest: epoch chosen by accuracy on a validation split of the training subjects (stratified by data set)",
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
    model: dict = field(default_factory=dict)  # EPIRConfig fields overriding the preset (e.g. center_input)

    def __post_init__(self) -> None:
        if self.selection not in SELECTIONS:
            raise ValueError(f"selection must be one of {SELECTIONS}, not {self.selection!r}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {PRECISIONS}, not {self.precision!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.lr <= 0:
            raise ValueError("epochs and batch size must be >= 1 and the learning rate > 0")
        if self.selection == "val" and not 0 < self.val_fraction < 1:
            raise ValueError("val_fraction must lie in (0, 1)")
        unknown = set(self.model) - {f.name for f in fields(EPIRConfig)} | ({"num_classes"} & set(self.model))
        if unknown:
            raise ValueError(f"model overrides name no settable EPIRConfig field: {sorted(unknown)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "TrainConfig":
        return cls(**d)
