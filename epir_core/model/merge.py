"""Token integration: ToMe bipartite soft matching on attention keys (Eqs. 5-8).

Tokens alternate between set A (even positions, CLS included) and set B (odd positions). Each A token
finds its most similar B token by cosine similarity of keys; the r best-matched A tokens are merged
into their B partners. CLS is never a source (its score row is -inf) and, being in A, never a
destination. Output order: unmerged A tokens in their original order (so CLS stays first), then B.

Two implementations give the same result: ToMe's gather / scatter-add, and a dense one-hot merge
matrix applied by einsum, which exports to ONNX and TensorRT (scatter with a reduction does not).
"""

from __future__ import annotations

from typing import Callable

import torch

Merge = Callable[[torch.Tensor], torch.Tensor]


def _identity(x: torch.Tensor) -> torch.Tensor:
    return x


def bipartite_soft_matching(metric: torch.Tensor, r: int, dense: bool = False) -> Merge:
    """Match tokens on `metric` (B x N x c, the keys) and return merge(x): B x N x C -> B x (N - r) x C,
    which sums every merged group. r must be a static int so that every shape is known in advance."""
    N = metric.shape[1]
    r = min(r, (N - 1) // 2)  # CLS is protected
    if r <= 0:
        return _identity
    with torch.no_grad():  # matching picks indices; gradients flow through the merged values only
        metric = metric / metric.norm(dim=-1, keepdim=True)
        a, b = metric[:, ::2], metric[:, 1::2]  # B x Na x c, B x Nb x c
        scores = a @ b.transpose(-1, -2)  # B x Na x Nb cosine similarities; `@` is not counted as MACs
        is_cls = torch.arange(scores.shape[1], device=scores.device)[:, None] == 0
        scores = scores.masked_fill(is_cls, -torch.inf)
        node_max, node_idx = scores.max(dim=-1)  # B x Na: best B partner of each A token
        edge_idx = node_max.argsort(dim=-1, descending=True)[..., None]  # B x Na x 1
        unm_idx = edge_idx[:, r:].sort(dim=1).values  # B x (Na - r) x 1, original order keeps CLS first
        src_idx = edge_idx[:, :r]  # B x r x 1
        dst_idx = node_idx[..., None].gather(dim=1, index=src_idx)  # B x r x 1
    if dense:
        return _dense_merge(unm_idx, src_idx, dst_idx, N)
    return _scatter_merge(unm_idx, src_idx, dst_idx)


def _scatter_merge(unm_idx: torch.Tensor, src_idx: torch.Tensor, dst_idx: torch.Tensor) -> Merge:
    def merge(x: torch.Tensor) -> torch.Tensor:
        B, _, C = x.shape
        src, dst = x[:, ::2], x[:, 1::2]
        unm = src.gather(dim=1, index=unm_idx.expand(B, unm_idx.shape[1], C))
        src = src.gather(dim=1, index=src_idx.expand(B, src_idx.shape[1], C))
        # include_self: the destination's own value is part of its group's sum.
        dst = dst.scatter_reduce(1, dst_idx.expand(B, dst_idx.shape[1], C), src, reduce="sum", include_self=True)
        return torch.cat([unm, dst], dim=1)

    return merge


def merge_matrix(unm_idx: torch.Tensor, src_idx: torch.Tensor, dst_idx: torch.Tensor, n: int) -> torch.Tensor:
    """One-hot B x (N - r) x N matrix: row o has a 1 at every input token summed into output o.

    Built from index comparisons only (no scatter), so it exports as Equal / Cast / Einsum."""
    positions = torch.arange(n, device=unm_idx.device)  # N
    nb = n // 2
    b_slots = torch.arange(nb, device=unm_idx.device)  # Nb
    unm_rows = 2 * unm_idx == positions  # B x (Na - r) x N: A token 2i stays as it is
    b_rows = (2 * b_slots + 1)[:, None] == positions  # Nb x N: B token j keeps itself ...
    src_onehot = (2 * src_idx == positions).float()  # B x r x N
    dst_onehot = (dst_idx == b_slots).float()  # B x r x Nb
    added = torch.einsum("brj,brn->bjn", dst_onehot, src_onehot)  # ... plus the A sources sent to it
    rows_b = b_rows.float() + added  # B x Nb x N
    return torch.cat([unm_rows.float(), rows_b], dim=1)


def _dense_merge(unm_idx: torch.Tensor, src_idx: torch.Tensor, dst_idx: torch.Tensor, n: int) -> Merge:
    matrix = merge_matrix(unm_idx, src_idx, dst_idx, n)

    def merge(x: torch.Tensor) -> torch.Tensor:
        return torch.einsum("bon,bnc->boc", matrix.to(x.dtype), x)

    return merge


def merge_wavg(merge: Merge, x: torch.Tensor, size: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Size-weighted mean of each merged group: x <- sum(s x) / sum(s), s <- sum(s).

    x: B x N x C, size: B x N x 1 (tokens each stands for) -> B x (N - r) x C, B x (N - r) x 1.
    Passing size = ones gives the plain mean of the group (Eq. 8 read literally)."""
    x = merge(x * size)
    size = merge(size)
    return x / size, size
