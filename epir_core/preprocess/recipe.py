"""The input recipe: everything that turns an onset/apex pair of frames into the model input.

A trained checkpoint stores the recipe of its training data, and the live app applies the recipe it
finds there, so that live inputs are made exactly as the training inputs were.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields


@dataclass(frozen=True)
class InputRecipe:
    crop_height: int = 170  # the composite's tight forehead-to-chin crops are about 170x140 px
    crop_width: int = 140
    flow: str = "tvl1"  # tvl1 | farneback | dis
    flow_params: dict = field(default_factory=dict)  # algorithm parameters; empty = OpenCV defaults
    third_channel: str = "strain"  # strain | magnitude
    size: int = 28
    normalise: str = "minmax"  # per-channel min-max stretch to [0, 1]
    quantise_bits: int = 8  # the composite flows were stored as 8-bit PNGs
    channels: tuple = ("u", "v", "strain")

    @classmethod
    def composite(cls) -> "InputRecipe":
        """The recipe of the MEGC 2019 composite flows (STSTNet: TV-L1 on tight face crops)."""
        return cls()

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "InputRecipe":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown input-recipe fields: {sorted(unknown)}")
        d = dict(d)
        if "channels" in d:
            d["channels"] = tuple(d["channels"])
        return cls(**d)
