"""OpenCV's Dual TV-L1 optical flow in torch, for CUDA machines whose OpenCV has no CUDA (no PyPI wheel has).

A step-by-step port of the CPU path of cv::optflow::DualTVL1OpticalFlow (opencv_contrib,
modules/optflow/src/tvl1flow.cpp), so that its flow is the flow the composite recipe was made with:
the same pyramid (INTER_LINEAR resizes by scale_step with weights in double precision, as the IPP
build of the OpenCV wheels computes them; coarsest level at least 16 px), the same warping
(bicubic remap of I1 and its centred gradient, coordinates rounded to 1/32 px, zeros outside), the same
median filter before each outer iteration, the same finite differences at the borders and the same
stopping rule (sum of squared flow updates <= epsilon^2 * pixels ends the warp), each in OpenCV's
order of float operations. Only rounding differs, by an ulp here and there; but with the recipe's
iteration budget that stopping rule makes TV-L1 chaotic on some pairs (OpenCV's own output moves as much
when its input moves by 1e-4 grey levels), so the port matches OpenCV as a distribution there, not
pixel for pixel. Runs on any torch device, on a batch of same-size pairs (each pair stops on its own).
"""

from __future__ import annotations

from functools import lru_cache

import cv2
import numpy as np
import torch
import torch.nn.functional as F

from epir_core.preprocess.recipe import TVL1Params

_MIN_LEVEL_SIDE = 16  # OpenCV drops pyramid levels smaller than this
_REMAP_STEPS = 32  # cv::remap rounds source coordinates to 1/32 px (INTER_TAB_SIZE)
_FLT_EPSILON = float(np.finfo(np.float32).eps)


def tvl1_flow(onset: np.ndarray, apex: np.ndarray, params: TVL1Params,
              device: str | torch.device = "cpu") -> np.ndarray:
    """Flow from onset to apex, as cv2.optflow.DualTVL1OpticalFlow(params).calc gives it.

    onset, apex: H x W uint8 (one pair) or N x H x W (a batch). Returns H x W x 2 (or N x H x W x 2)
    float32, u rightward and v downward in pixels.
    """
    single = onset.ndim == 2
    i0 = torch.from_numpy(np.ascontiguousarray(onset[None] if single else onset)).to(device, torch.float32)
    i1 = torch.from_numpy(np.ascontiguousarray(apex[None] if single else apex)).to(device, torch.float32)
    flow = dual_tvl1(i0, i1, params).permute(0, 2, 3, 1).cpu().numpy()
    return flow[0] if single else flow


@torch.no_grad()
def dual_tvl1(i0: torch.Tensor, i1: torch.Tensor, params: TVL1Params) -> torch.Tensor:
    """N x H x W float32 grey levels (0-255) -> N x 2 x H x W flow, on the inputs' device."""
    pyramid = [(i0, i1)]
    for _ in range(1, params.scales):
        h, w = pyramid[-1][0].shape[-2:]
        # cv::resize with fx = fy = scale_step: the size is rounded, the step is exactly 1 / scale_step.
        size = (round(h * params.scale_step), round(w * params.scale_step))
        if min(size) < _MIN_LEVEL_SIDE:
            break
        pyramid.append(tuple(_resize(x, size, 1 / params.scale_step) for x in pyramid[-1]))

    channels = 3 if params.gamma != 0 else 2  # u1, u2 and, with gamma, the illumination term u3
    h, w = pyramid[-1][0].shape[-2:]
    u = i0.new_zeros((i0.shape[0], channels, h, w))
    for j0, j1 in reversed(pyramid):
        if u.shape[-2:] != j0.shape[-2:]:
            u = _resize(u, tuple(j0.shape[-2:]), None)
            u[:, :2] *= 1 / params.scale_step  # displacements grow with the image; u3 does not
        u = _one_scale(j0, j1, u, params)
    return u[:, :2]


def _one_scale(i0: torch.Tensor, i1: torch.Tensor, u: torch.Tensor, p: TVL1Params) -> torch.Tensor:
    """p.warps rounds of warping I1 by the flow, each followed by the primal-dual iterations."""
    n, channels, h, w = u.shape
    # OpenCV rounds these to float once; the port keeps the rounded values.
    l_t, taut, theta = (float(np.float32(x)) for x in (p.lambda_ * p.theta, p.tau / p.theta, p.theta))
    scaled_epsilon = float(np.float32(p.epsilon * p.epsilon * h * w))
    i1_and_gradient = torch.stack([i1, *_centred_gradient(i1)], dim=1)  # N x 3 x H x W
    dual = u.new_zeros((n, channels, 2, h, w))  # p11 p12 / p21 p22 / p31 p32, reset at each scale
    for _ in range(p.warps):
        i1w, i1wx, i1wy = _remap_cubic(i1_and_gradient, u[:, 0], u[:, 1]).unbind(1)
        grad = i1wx * i1wx + i1wy * i1wy
        rho_c = i1w - i1wx * u[:, 0] - i1wy * u[:, 1] - i0
        # The data term's gradient with respect to (u1, u2, u3).
        direction = [i1wx, i1wy] + ([torch.full_like(i1wx, p.gamma)] if channels == 3 else [])
        direction = torch.stack(direction, dim=1)
        active = torch.ones(n, dtype=torch.bool, device=u.device)  # pairs whose warp has not converged
        for _ in range(p.outer_iterations):
            if (keep := _running(active)) is False:
                break
            if p.median_filtering > 1:
                filtered = _median(u[:, :2], p.median_filtering)
                u = torch.cat([_keep(keep, filtered, u[:, :2]), u[:, 2:]], dim=1)
            for _ in range(p.inner_iterations):
                if (keep := _running(active)) is False:
                    break
                rho = rho_c + (i1wx * u[:, 0] + i1wy * u[:, 1])
                if channels == 3:
                    rho = rho + p.gamma * u[:, 2]
                # Thresholding step: v = u + step * direction, the closed-form minimiser of the data term.
                bound = l_t * grad
                step = torch.where(grad > _FLT_EPSILON, -rho / grad.clamp_min(_FLT_EPSILON), torch.zeros_like(rho))
                step = torch.where(rho > bound, -l_t, step)
                step = torch.where(rho < -bound, l_t, step)
                v = u + step[:, None] * direction
                new_u = v + theta * _divergence(dual)
                error = ((new_u - u) ** 2).sum((1, 2, 3))
                gradient = _forward_gradient(new_u)
                norm = torch.hypot(gradient[:, :, 0], gradient[:, :, 1])
                new_dual = (dual + taut * gradient) / (1 + taut * norm)[:, :, None]
                u, dual = _keep(keep, new_u, u), _keep(keep, new_dual, dual)
                active &= error > scaled_epsilon
    return u


def _running(active: torch.Tensor) -> torch.Tensor | bool:
    """False when every pair has stopped, True when none has, else the mask of those still running.
    (One host sync per iteration: the price of OpenCV's stopping rule, which saves most iterations.)"""
    running = int(active.sum())
    return running == active.numel() or (running > 0 and active)


def _keep(keep: torch.Tensor | bool, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """new for the pairs still running, old for those that have stopped."""
    if keep is True:
        return new
    return torch.where(keep.view(-1, *[1] * (new.dim() - 1)), new, old)


def _resize(x: torch.Tensor, size: tuple[int, int], step: float | None) -> torch.Tensor:
    """cv::resize(INTER_LINEAR) of the last two dimensions to `size`; `step` is the source pixels per
    destination pixel when given as fx (OpenCV then uses it rather than the ratio of the sizes)."""
    rows = _linear_weights(x.shape[-2], size[0], step, x)
    cols = _linear_weights(x.shape[-1], size[1], step, x)
    return rows @ (x @ cols.T)  # along rows first, as OpenCV


def _linear_weights(src: int, dst: int, step: float | None, like: torch.Tensor) -> torch.Tensor:
    """dst x src matrix of cv::resize's bilinear weights along one axis: source position
    (d + 0.5) * step - 0.5, held at the first or last pixel beyond the edges."""
    step = 1 / (dst / src) if step is None else step
    pos = (torch.arange(dst, dtype=torch.float64) + 0.5) * step - 0.5
    left = pos.floor()
    frac = pos - left
    frac[left < 0] = 0
    left.clamp_(min=0)
    frac[left >= src - 1] = 0
    left.clamp_(max=src - 1)
    right = (left + 1).clamp(max=src - 1)
    weights = torch.zeros(dst, src, dtype=torch.float64)
    weights.index_put_((torch.arange(dst), left.long()), 1 - frac, accumulate=True)
    weights.index_put_((torch.arange(dst), right.long()), frac, accumulate=True)
    return weights.to(like.device, like.dtype)


def _centred_gradient(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Half the central difference; at the borders half the one-sided difference (= replicated edge)."""
    padded = F.pad(x[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
    dx = 0.5 * (padded[:, 1:-1, 2:] - padded[:, 1:-1, :-2])
    dy = 0.5 * (padded[:, 2:, 1:-1] - padded[:, :-2, 1:-1])
    return dx, dy


def _forward_gradient(u: torch.Tensor) -> torch.Tensor:
    """N x C x H x W -> N x C x 2 x H x W forward differences, zero on the last column / row."""
    dx = F.pad(u[..., 1:] - u[..., :-1], (0, 1))
    dy = F.pad(u[..., 1:, :] - u[..., :-1, :], (0, 0, 0, 1))
    return torch.stack([dx, dy], dim=2)


def _divergence(dual: torch.Tensor) -> torch.Tensor:
    """N x C x 2 x H x W -> N x C x H x W backward differences, the field taken as zero before the first
    column / row (OpenCV's divergence, not the exact adjoint of the forward gradient)."""
    px, py = dual[:, :, 0], dual[:, :, 1]
    py_before = F.pad(py[..., :-1, :], (0, 0, 1, 0))
    div = (px - F.pad(px[..., :-1], (1, 0))) + (py - py_before)
    div[..., 0] = (px[..., 0] + py[..., 0]) - py_before[..., 0]  # OpenCV's order on the first column
    return div


def _remap_cubic(images: torch.Tensor, u1: torch.Tensor, u2: torch.Tensor) -> torch.Tensor:
    """cv::remap(INTER_CUBIC, BORDER_CONSTANT 0) of N x C x H x W images at (x + u1, y + u2).

    Like OpenCV: the position is rounded to 1/32 px, the 4 x 4 taps are weighted by its table of
    Keys' cubic (a = -0.75) and summed row by row, and taps outside the image count as zero.
    """
    n, c, h, w = images.shape
    ys, xs = torch.meshgrid(torch.arange(h, device=u1.device), torch.arange(w, device=u1.device), indexing="ij")
    x = torch.round((xs + u1) * _REMAP_STEPS).long()  # N x H x W, in 1/32 px
    y = torch.round((ys + u2) * _REMAP_STEPS).long()
    # Zero-pad by 4 and hold far-away positions at -3 / size + 1, where all four taps still land on zeros.
    ix = torch.div(x, _REMAP_STEPS, rounding_mode="floor").clamp(-3, w + 1)
    iy = torch.div(y, _REMAP_STEPS, rounding_mode="floor").clamp(-3, h + 1)
    padded = F.pad(images, (4, 4, 4, 4)).flatten(2)  # N x C x (H + 8)(W + 8)
    top_left = (iy + 3) * (w + 8) + (ix + 3)  # the tap at (iy - 1, ix - 1) in the padded image
    offsets = (torch.arange(4, device=u1.device)[:, None] * (w + 8) + torch.arange(4, device=u1.device)).flatten()
    taps = padded.gather(2, (top_left.flatten(1)[:, None, :] + offsets[:, None]).flatten(1)[:, None].expand(n, c, -1))
    taps = taps.view(n, c, 4, 4, h * w)
    table = _cubic_table(u1.device)  # 32 x 4
    wy = table[(y % _REMAP_STEPS).flatten(1)].permute(0, 2, 1)  # N x 4 x HW
    wx = table[(x % _REMAP_STEPS).flatten(1)].permute(0, 2, 1)
    products = taps * (wy[:, :, None] * wx[:, None, :])[:, None]  # OpenCV's 2-D table holds wy * wx
    rows = ((products[:, :, :, 0] + products[:, :, :, 1]) + products[:, :, :, 2]) + products[:, :, :, 3]
    total = ((rows[:, :, 0] + rows[:, :, 1]) + rows[:, :, 2]) + rows[:, :, 3]
    return total.view(n, c, h, w)


@lru_cache(maxsize=4)
def _cubic_table(device: torch.device) -> torch.Tensor:
    """32 x 4 float32: the cubic weights of taps -1, 0, 1, 2 at each 1/32 px fraction, computed as
    OpenCV's interpolateCubic computes them (float arithmetic, in this order)."""
    a, t = np.float32(-0.75), np.arange(_REMAP_STEPS, dtype=np.float32) / np.float32(_REMAP_STEPS)
    one = np.float32(1)
    w0 = ((a * (t + one) - np.float32(5) * a) * (t + one) + np.float32(8) * a) * (t + one) - np.float32(4) * a
    w1 = ((a + np.float32(2)) * t - (a + np.float32(3))) * t * t + one
    w2 = ((a + np.float32(2)) * (one - t) - (a + np.float32(3))) * (one - t) * (one - t) + one
    w3 = one - w0 - w1 - w2
    return torch.from_numpy(np.stack([w0, w1, w2, w3], axis=1)).to(device)


def _median(u: torch.Tensor, k: int) -> torch.Tensor:
    """cv::medianBlur(k) of each N x C x H x W map, edges replicated."""
    if u.device.type == "cpu":  # OpenCV's sorting network is about 20x faster than torch's sort on a CPU
        maps = u.reshape(-1, *u.shape[-2:]).numpy()
        return torch.from_numpy(np.stack([cv2.medianBlur(m, k) for m in maps])).reshape(u.shape)
    return _median_torch(u, k)


def _median_torch(u: torch.Tensor, k: int) -> torch.Tensor:
    r = k // 2
    padded = F.pad(u, (r, r, r, r), mode="replicate")
    windows = padded.unfold(2, k, 1).unfold(3, k, 1)  # N x C x H x W x k x k
    return windows.reshape(*u.shape, k * k).median(dim=-1).values
