"""Parts of epir-live on their own: the capture ring buffer, the causal spotter, the backends."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from realtime.backends import BackendUnavailable, make_backend
from realtime.sources import FrameSource, SourceSpec
from realtime.spotting import Spotter, SpotterConfig


def counting_reader(n: int, shape=(4, 4, 3)):
    count = iter(range(n))

    def read():
        i = next(count, None)
        return None if i is None else np.full(shape, i % 256, np.uint8)

    return read


def test_live_source_drops_and_counts_when_the_consumer_is_slow():
    spec = SourceSpec("video", "fake", realtime=True, buffer_frames=2)
    source = FrameSource(spec, counting_reader(300), fps=3000.0, live=True, close=lambda: None)
    seen = []
    for frame in source:
        seen.append(frame.index)
        time.sleep(0.005)  # much slower than the 3000 fps producer
    assert source.dropped > 0 and len(seen) + source.dropped == 300
    assert seen == sorted(seen) and seen[-1] == 299  # oldest dropped, newest kept


def test_file_source_blocks_instead_of_dropping():
    spec = SourceSpec("video", "fake", buffer_frames=2)
    source = FrameSource(spec, counting_reader(50), fps=30.0, live=False, close=lambda: None)
    frames = []
    for frame in source:
        frames.append(frame)
        time.sleep(0.001)
    assert [f.index for f in frames] == list(range(50)) and source.dropped == 0
    assert frames[30].time_s == pytest.approx(1.0)


def test_a_camera_that_stops_delivering_is_a_source_error_after_its_frames():
    from realtime.sources import SourceError

    source = FrameSource(SourceSpec("camera", "0"), counting_reader(3), fps=30.0, live=True, close=lambda: None)
    seen = []
    with pytest.raises(SourceError, match="stopped delivering"):
        for frame in source:
            seen.append(frame.index)
    assert seen == [0, 1, 2]


def feed(spotter: Spotter, faces: list[np.ndarray]):
    from epir_core.preprocess import FaceBox

    box = FaceBox(8, 8, 112, 112)
    return [s for i, f in enumerate(faces) if (s := spotter.update(i, f, box)) is not None]


def textured(rng: np.random.Generator) -> np.ndarray:
    import cv2

    return cv2.GaussianBlur(rng.uniform(0, 255, (128, 128)).astype(np.float32), (0, 0), 2).astype(np.uint8)


def shifted_patch(base: np.ndarray, amount: float) -> np.ndarray:
    """base with a 24 px patch moved right by `amount` px: a local motion."""
    import cv2

    out = base.copy()
    m = np.float32([[1, 0, amount], [0, 1, 0]])
    moved = cv2.warpAffine(base, m, base.shape[::-1], borderMode=cv2.BORDER_REFLECT)
    out[60:84, 40:64] = moved[60:84, 40:64]
    return out


def test_spotter_finds_a_brief_local_motion_and_ignores_a_lasting_one():
    rng = np.random.default_rng(0)
    base = textured(rng)
    fps, n = 30.0, 90
    brief = [shifted_patch(base, 3.0 if 50 <= i <= 54 else 0.0) for i in range(n)]
    lasting = [shifted_patch(base, 3.0 if i >= 50 else 0.0) for i in range(n)]
    spots = feed(Spotter(SpotterConfig(), fps), brief)
    assert len(spots) == 1 and 49 <= spots[0].apex <= 55
    assert spots[0].onset < spots[0].apex < spots[0].offset
    assert feed(Spotter(SpotterConfig(), fps), lasting) == []


def test_spotter_windows_follow_the_frame_rate():
    slow, fast = Spotter(SpotterConfig(gap_s=0.2), 30.0), Spotter(SpotterConfig(gap_s=0.2), 200.0)
    assert (slow.k, fast.k) == (6, 40)
    assert fast.max_run == round(0.5 * 200)


@pytest.fixture(scope="module")
def model():
    from epir_core import build_model

    torch.manual_seed(0)
    return build_model(num_classes=3).eval()


def test_torch_backend_returns_the_model_logits(model, tmp_path):
    backend = make_backend(model, "torch", "cpu", tmp_path, "k")
    x = np.random.default_rng(0).random((1, 3, 28, 28), dtype=np.float32)
    with torch.inference_mode():
        expected = model(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(backend(x), expected, atol=1e-6)
    assert backend.name == "torch" and backend.device == "cpu"


def test_auto_on_cpu_picks_onnx_and_caches_the_export(model, tmp_path):
    pytest.importorskip("onnxruntime")
    backend = make_backend(model, "auto", "cpu", tmp_path, "k")
    assert backend.name == "onnx" and "chosen by auto" in backend.note
    assert list(tmp_path.glob("*.onnx"))
    x = np.random.default_rng(1).random((1, 3, 28, 28), dtype=np.float32)
    with torch.inference_mode():
        np.testing.assert_allclose(backend(x), model(torch.from_numpy(x)).numpy(), atol=1e-3)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where CUDA is absent")
def test_tensorrt_without_cuda_is_unavailable(model, tmp_path):
    with pytest.raises(BackendUnavailable):
        make_backend(model, "tensorrt", "auto", tmp_path, "k")
