"""The model configuration and the presets of the paper's ablation (Table 4).

Every choice the paper leaves open (marked [I] in ../shared/docs/epir.md) is a field here, with the
reconstructed default; the defaults give the paper's 7.03 M parameters and 84.03 M MACs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace

TOKENIZERS = ("linear", "spt", "dnspt")
ATTENTIONS = ("msa", "itals")
MERGE_MODES = ("size_weighted", "pair_mean")
MERGE_IMPLS = ("scatter", "dense")
TEMPERATURES = ("scalar", "per_head")


@dataclass(frozen=True)
class EPIRConfig:
    num_classes: int = 3
    # Input and tokenization. 28 px and 7 px patches are [I, fit]: they give 16 patch tokens.
    image_size: int = 28
    in_channels: int = 3  # u, v, optical strain
    patch_size: int = 7
    tokenizer: str = "dnspt"  # linear (plain ViT) | spt (shift + LN + FC) | dnspt (+ LN after FC, Eq. 3)
    spt_shift: int = 3  # [I] half the patch size as in SPT; the paper's "half the map" would blank 3/4
    center_input: bool = False  # [I] map [0, 1] to [-1, 1] so SPT's zero padding means "no motion"
    embed_init_std: float = 0.02  # [I] trunc-normal std of the CLS token and position embedding
    # Transformer width. dim_head = dim // heads is [I, fit], needed for the parameter count.
    dim: int = 256
    heads: int = 3
    dim_head: int = 85
    mlp_dim: int = 512
    dropout: float = 0.0  # [I] EPIR states none; applied to attention weights and MLP outputs
    drop_path: float = 0.0  # [I] stochastic depth rate, constant over blocks
    # Token integration (TI) module: ToMe bipartite merging between attention and MLP.
    ti_blocks: int = 6
    merge_r: int = 1  # [I, fit] tokens merged per TI block: 17 -> 11
    ti_attention: str = "msa"  # [I] the paper defines ITALS only for the extractor
    merge_mode: str = "size_weighted"  # [I] ToMe's size-weighted mean; pair_mean is Eq. 8 read literally
    merge_impl: str = "scatter"  # scatter (ToMe) | dense (one-hot merge matrix: ONNX/TensorRT friendly)
    prop_attn: bool = False  # [I] ToMe proportional attention (log token size added to the logits)
    # Discriminative token extractor, DTSM and the last block.
    extractor_blocks: int = 6
    extractor_attention: str = "itals"  # also used by the last block
    temperature: str = "scalar"  # [I] one learnable tau per ITALS block (Eq. 12) or one per head
    dtsm: bool = True
    final_norm: bool = True  # [I] TransFG's part_norm; needed for 7.03 M at 3 classes
    # Loss (Eq. 23): L = CE + contrastive_weight * L_con.
    contrastive_weight: float = 1.0
    contrastive_margin: float = 0.4  # [I] alpha of Eq. 22, TransFG's value

    def __post_init__(self) -> None:
        for name, allowed in (
            ("tokenizer", TOKENIZERS),
            ("ti_attention", ATTENTIONS),
            ("extractor_attention", ATTENTIONS),
            ("merge_mode", MERGE_MODES),
            ("merge_impl", MERGE_IMPLS),
            ("temperature", TEMPERATURES),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {getattr(self, name)!r}")
        if self.image_size % self.patch_size:
            raise ValueError(f"image_size {self.image_size} is not a multiple of patch_size {self.patch_size}")
        if min(self.num_classes, self.heads, self.dim_head, self.dim, self.mlp_dim) < 1:
            raise ValueError("num_classes, heads, dim_head, dim and mlp_dim must be positive")
        if min(self.ti_blocks, self.merge_r, self.extractor_blocks, self.spt_shift) < 0:
            raise ValueError("ti_blocks, merge_r, extractor_blocks and spt_shift must not be negative")
        if self.spt_shift * 2 > self.image_size:
            raise ValueError(f"spt_shift {self.spt_shift} is more than half of image_size {self.image_size}")
        if self.dtsm and self.extractor_blocks == 0:
            raise ValueError("DTSM rolls out the extractor blocks' attention: extractor_blocks must be >= 1")
        if self.token_counts()[-1] < 2:
            raise ValueError("token merging leaves fewer than 2 tokens; lower merge_r or ti_blocks")

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2

    def merges(self) -> tuple[int, ...]:
        """Tokens merged by each TI block: r, capped as in ToMe at half of the unprotected tokens."""
        n, out = self.num_patches + 1, []
        for _ in range(self.ti_blocks):
            r = min(self.merge_r, (n - 1) // 2)
            out.append(r)
            n -= r
        return tuple(out)

    def token_counts(self) -> tuple[int, ...]:
        """Token count entering the model and after each TI block (default 17, 16, ..., 11)."""
        counts = [self.num_patches + 1]
        for r in self.merges():
            counts.append(counts[-1] - r)
        return tuple(counts)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "EPIRConfig":
        unknown = set(d) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"unknown EPIR config fields: {sorted(unknown)}")
        return cls(**d)


# Table 4, row by row, each adding one part to the previous row. Without the TI module the 13 blocks
# are 12 extractor blocks + the last one (the paper rolls out "the 12 blocks before the last").
_VIT = EPIRConfig(
    tokenizer="linear",
    ti_blocks=0,
    extractor_blocks=12,
    extractor_attention="msa",
    dtsm=False,
    contrastive_weight=0.0,
)
_DTSM = replace(_VIT, dtsm=True, contrastive_weight=1.0)  # DTSM comes with L_con in the paper
_ITALS = replace(_DTSM, extractor_attention="itals")
_SPT = replace(_ITALS, tokenizer="spt")
_DNSPT = replace(_SPT, tokenizer="dnspt")

PRESETS: dict[str, EPIRConfig] = {
    "vit": _VIT,
    "+dtsm": _DTSM,
    "+itals": _ITALS,
    "+spt": _SPT,
    "+dnspt": _DNSPT,
    "epir": EPIRConfig(),  # + token integration
}
