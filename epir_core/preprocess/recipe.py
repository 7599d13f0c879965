"""The input recipe: everything that turns an onset/apex pair of frames into the model input.

A trained checkpoint stores the recipe of its training data, and the live app applies the recipe it
finds there, so that live inputs are made exactly as the training inputs were.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace


@dataclass(frozen=True)
class TVL1Params:
    """cv2.optflow.DualTVL1OpticalFlow_create arguments; the defaults are OpenCV's (= IPOL TV-L1's)."""

    tau: float = 0.25
    lambda_: float = 0.15
    theta: float = 0.3
    scales: int = 5
    warps: int = 5
    epsilon: float = 0.01
    inner_iterations: int = 30
    outer_iterations: int = 10
    scale_step: float = 0.8
    gamma: float = 0.0
    median_filtering: int = 5


@dataclass(frozen=True)
class FarnebackParams:
    """cv2.calcOpticalFlowFarneback arguments; the defaults are the EPIR paper's / HTNet's."""

    pyr_scale: float = 0.5
    levels: int = 3
    winsize: int = 15
    iterations: int = 3
    poly_n: int = 5
    poly_sigma: float = 1.2


@dataclass(frozen=True)
class DISParams:
    """cv2.DISOpticalFlow preset: ultrafast | fast | medium."""

    preset: str = "medium"


FLOW_PARAMS = {"tvl1": TVL1Params, "farneback": FarnebackParams, "dis": DISParams}
FLOW_NAMES = {kind: name for name, kind in FLOW_PARAMS.items()}
FlowParams = TVL1Params | FarnebackParams | DISParams


@dataclass(frozen=True)
class InputRecipe:
    crop_height: int = 170  # the composite's tight forehead-to-chin crops are about 170x140 px
    crop_width: int = 140
    # How both frames are cut from the onset's face: "box" crops the landmark box (grown by
    # face_margin), as the first build did; "similarity" warps the face-mesh landmarks onto
    # `template` (align.py). Defaults are the first build's, so its checkpoints load unchanged.
    align: str = "box"
    template: tuple = ()  # (x, y) fractions of the crop, one per align.ALIGN_POINTS entry
    face_margin: float = 0.0  # extra fraction of the landmark box on each side ("box" only)
    # "head" cuts the apex where the head has moved since the onset (align.head_motion: shift, scale,
    # roll; "similarity" only), as the databases registered their frames; a roll of half a degree
    # would otherwise outweigh the expression in the flow. "none" is the earlier builds' way.
    register: str = "none"
    flow: str = "tvl1"  # tvl1 | farneback | dis
    flow_params: FlowParams = None  # None = the algorithm's defaults (filled in on construction)
    third_channel: str = "strain"  # strain | magnitude
    # Where strain is differentiated: "crop" = forward differences on the crop's flow, then resized
    # (the first build); "input" = central differences on the resized size x size flow, which is
    # how the composite's strain relates to its own u and v (correlation 0.84-0.86, README).
    strain_grid: str = "crop"
    size: int = 28
    resize: str = "area"  # area | linear: OpenCV interpolation of the maps down to size x size
    normalise: str = "minmax"  # per-channel min-max stretch to [0, 1]
    quantise_bits: int = 8  # the composite flows were stored as 8-bit PNGs
    channels: tuple = ("u", "v", "strain")  # derived from third_channel; kept in the dict for readers

    def __post_init__(self):
        if self.flow not in FLOW_PARAMS:
            raise ValueError(f"unknown flow {self.flow!r}; expected one of {sorted(FLOW_PARAMS)}")
        expected = FLOW_PARAMS[self.flow]
        if self.flow_params is None:
            object.__setattr__(self, "flow_params", expected())
        elif not isinstance(self.flow_params, expected):
            raise ValueError(f"flow {self.flow!r} needs {expected.__name__}, got {type(self.flow_params).__name__}")
        if self.align not in ("box", "similarity"):
            raise ValueError(f"unknown alignment {self.align!r}; expected box or similarity")
        object.__setattr__(self, "template", tuple(tuple(float(c) for c in point) for point in self.template))
        if self.align == "similarity" and not self.template:
            raise ValueError("similarity alignment needs a template")
        if self.register not in ("none", "head"):
            raise ValueError(f"unknown registration {self.register!r}; expected none or head")
        if self.register == "head" and self.align != "similarity":
            raise ValueError("head registration moves the aligned crop; it needs align='similarity'")
        if self.strain_grid not in ("crop", "input"):
            raise ValueError(f"unknown strain grid {self.strain_grid!r}; expected crop or input")
        if self.resize not in ("area", "linear"):
            raise ValueError(f"unknown resize {self.resize!r}; expected area or linear")
        if self.third_channel not in ("strain", "magnitude"):
            raise ValueError(f"unknown third channel {self.third_channel!r}")
        if self.normalise != "minmax":
            raise ValueError(f"unknown normalisation {self.normalise!r}")
        object.__setattr__(self, "channels", ("u", "v", self.third_channel))

    @classmethod
    def composite(cls) -> "InputRecipe":
        """The recipe of the MEGC 2019 composite flows (STSTNet: TV-L1 on tight face crops), with
        the crops aligned as the composite's faces are and the head's motion removed.

        TV-L1 runs on one scale, not OpenCV's five: on real frames its inputs match the composite's
        as closely as five scales do, in half the time, and it differs from five scales less than
        five scales differ from themselves on a fresh draw of sensor noise (README, input recipe).
        A single scale cannot follow a move of pixels, which register="head" takes away.
        """
        from epir_core.preprocess.align import load_template

        return cls(align="similarity", template=load_template(), register="head", flow_params=TVL1Params(scales=1),
                   strain_grid="input", resize="linear")

    @classmethod
    def paper(cls) -> "InputRecipe":
        """The EPIR paper's description: Farneback flow, strain third channel, aligned crops."""
        return replace(cls.composite(), flow="farneback", flow_params=None)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["channels"] = list(self.channels)
        d["template"] = [list(point) for point in self.template]
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "InputRecipe":
        known = {f.name for f in fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown input-recipe fields: {sorted(unknown)}")
        d = dict(d)
        d.pop("channels", None)  # derived from third_channel
        flow = d.get("flow", "tvl1")
        params = d.get("flow_params")
        if isinstance(params, dict):
            kind = FLOW_PARAMS.get(flow)
            if kind is None:
                raise ValueError(f"unknown flow {flow!r}")
            unknown = set(params) - {f.name for f in fields(kind)}
            if unknown:
                raise ValueError(f"unknown {flow} parameters: {sorted(unknown)}")
            d["flow_params"] = kind(**params)
        return cls(**d)
