"""Optical strain of a flow field (EPIR Eq. 2, STSTNet): |e| = sqrt(u_x^2 + v_y^2 + 1/2 (u_y + v_x)^2)."""

from __future__ import annotations

import numpy as np


def _forward_difference(a: np.ndarray, axis: int) -> np.ndarray:
    """a[i+1] - a[i] along `axis`, 0 on the last row/column (first differences, as STSTNet)."""
    d = np.zeros_like(a)
    if axis == 1:
        d[:, :-1] = a[:, 1:] - a[:, :-1]
    else:
        d[:-1] = a[1:] - a[:-1]
    return d


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """flow: H x W x 2 (u, v) -> H x W strain magnitude, float32."""
    u, v = flow[..., 0], flow[..., 1]
    u_x, u_y = _forward_difference(u, 1), _forward_difference(u, 0)
    v_x, v_y = _forward_difference(v, 1), _forward_difference(v, 0)
    return np.sqrt(u_x**2 + v_y**2 + 0.5 * (u_y + v_x) ** 2).astype(np.float32)
