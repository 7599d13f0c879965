"""Optical strain of a flow field (EPIR Eq. 2, STSTNet): |e| = sqrt(u_x^2 + v_y^2 + 1/2 (u_y + v_x)^2)."""

from __future__ import annotations

import numpy as np


def _forward_difference(a: np.ndarray, axis: int) -> np.ndarray:
    """a[i+1] - a[i] along `axis`, 0 on the last row/column."""
    d = np.zeros_like(a)
    if axis == 1:
        d[:, :-1] = a[:, 1:] - a[:, :-1]
    else:
        d[:-1] = a[1:] - a[:-1]
    return d


def optical_strain(flow: np.ndarray, differences: str = "forward") -> np.ndarray:
    """flow: H x W x 2 (u, v) -> H x W strain magnitude, float32.

    differences: "forward" (the first build's), or "central" (numpy.gradient: central inside,
    one-sided at the border), which reproduces the composite's strain from its own u and v.
    """
    u, v = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    if differences == "central":
        u_y, u_x = np.gradient(u)
        v_y, v_x = np.gradient(v)
    else:
        u_x, u_y = _forward_difference(u, 1), _forward_difference(u, 0)
        v_x, v_y = _forward_difference(v, 1), _forward_difference(v, 0)
    return np.sqrt(u_x**2 + v_y**2 + 0.5 * (u_y + v_x) ** 2).astype(np.float32)
