"""ONNX export: ONNX Runtime gives the same logits as PyTorch."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from epir_core import build_model
from epir_core.export import export_onnx

ort = pytest.importorskip("onnxruntime", reason="onnxruntime is a dev extra")
onnx = pytest.importorskip("onnx", reason="onnx is a dev extra")
pytest.importorskip("onnxscript", reason="the torch.export-based ONNX exporter needs onnxscript")


def test_onnx_runtime_matches_pytorch(tmp_path):
    torch.manual_seed(0)
    model = build_model().eval()  # scatter merging: the export must switch to the dense path itself
    path = export_onnx(model, tmp_path / "epir.onnx", dynamic_batch=True)
    ops = {node.op_type for node in onnx.load(str(path)).graph.node}
    assert not ops & {"ScatterElements", "ScatterND", "EyeLike"}  # what ORT / TensorRT get wrong
    options = ort.SessionOptions()
    options.log_severity_level = 3  # ORT warns about CastLike nodes it cannot constant-fold
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    for batch in (1, 3):
        x = torch.rand(batch, 3, 28, 28)
        (onnx_logits,) = session.run(None, {"flow": x.numpy()})
        with torch.no_grad():
            torch_logits = model(x).numpy()
        assert onnx_logits.shape == (batch, 3)
        assert np.abs(onnx_logits - torch_logits).max() < 1e-4
