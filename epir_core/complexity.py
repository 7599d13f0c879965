"""Parameter and MAC counts, with the counter the paper's numbers come from.

The same model gives 83.97 M (thop), 84.03 M (ptflops, PyTorch backend), 84.83 M (ptflops, aten) or
85.14 M (fvcore): a MAC figure means nothing without its counter, so the counter is fixed here.
"""

from __future__ import annotations

import copy

from torch import nn

MAC_COUNTER = (
    "ptflops 0.7.5, PyTorch backend, batch 1, multiply-accumulates: Linear counts in*out + bias per "
    "token, LayerNorm and F.softmax numel, GELU numel twice (module and functional hook), torch.matmul "
    "numel(a)*cols(b); einsum and the @ operator are not counted"
)


def count_parameters(model: nn.Module) -> int:
    """Every parameter, including bare nn.Parameter attributes (CLS, position embedding, temperatures)
    that thop misses."""
    return sum(p.numel() for p in model.parameters())


def count_macs(model: nn.Module, input_shape: tuple[int, ...] = (3, 28, 28)) -> int:
    """MACs of one forward pass at batch 1, by MAC_COUNTER. Counts a copy: ptflops patches the model."""
    try:
        from ptflops import get_model_complexity_info
    except ImportError as exc:  # not on the GPU machine; it is a dev extra
        raise ImportError("count_macs needs ptflops 0.7.5: pip install -e '.[dev]'") from exc
    probe = copy.deepcopy(model).float().cpu().eval()
    macs, _ = get_model_complexity_info(
        probe, tuple(input_shape), as_strings=False, print_per_layer_stat=False, backend="pytorch"
    )
    if macs is None:  # ptflops prints the traceback and returns None instead of raising
        raise RuntimeError("ptflops failed to count the model (its traceback is printed above)")
    return int(macs)
