"""The training loss: cross-entropy plus TransFG's contrastive loss on the CLS feature (Eqs. 22-23)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def _valid_weights(labels: torch.Tensor, valid: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row weights (1 valid, 0 padded) and the number of valid rows, at least 1."""
    w = torch.ones_like(labels, dtype=torch.float32) if valid is None else valid.to(torch.float32)
    return w, w.sum().clamp(min=1.0)


def contrastive_loss(
    feats: torch.Tensor, labels: torch.Tensor, margin: float = 0.4, valid: torch.Tensor | None = None
) -> torch.Tensor:
    """L_con = 1/B^2 [sum_{y_i = y_j} (1 - S_ij) + sum_{y_i != y_j} max(S_ij - margin, 0)], S = cosine.

    feats: B x D, labels: B, valid: optional bool B; rows with valid=False take no part and B counts the
    valid rows only. Masking (not indexing) keeps shapes static for compiled training steps."""
    z = F.normalize(feats.float(), dim=-1)
    sim = z @ z.T  # B x B
    same = labels[:, None] == labels[None, :]
    pair_loss = torch.where(same, 1 - sim, (sim - margin).clamp(min=0))
    w, n = _valid_weights(labels, valid)
    return (pair_loss * w[:, None] * w[None, :]).sum() / n**2


def epir_loss(
    logits: torch.Tensor,
    feats: torch.Tensor,
    labels: torch.Tensor,
    margin: float = 0.4,
    valid: torch.Tensor | None = None,
    contrastive_weight: float = 1.0,
    targets: torch.Tensor | None = None,
) -> torch.Tensor:
    """L = CE(logits, labels) + contrastive_weight * L_con(feats) (Eq. 23, unit weight in the paper;
    the "vit" ablation preset trains without L_con: pass config.contrastive_weight).

    targets: optional B x C weights replacing the one-hot labels in CE, -sum_c targets_c log p_c
    (label smoothing, mixup and class weights make them; they need not sum to 1). L_con still uses
    `labels`."""
    w, n = _valid_weights(labels, valid)
    if valid is not None:  # padded rows may carry any label (e.g. -1); give them a legal one, weight 0
        labels = torch.where(valid, labels, torch.zeros_like(labels))
    if targets is None:
        rows = F.cross_entropy(logits.float(), labels, reduction="none")
    else:
        rows = -(targets.float() * F.log_softmax(logits.float(), dim=-1)).sum(-1)
    ce = (rows * w).sum() / n
    if contrastive_weight == 0:
        return ce
    return ce + contrastive_weight * contrastive_loss(feats, labels, margin, valid)
