"""epir_core.runtime and the helpers every command shares: backends with their parity check, the
model cache (hash, rebuild, folder permissions), the device resolver, atomic writes, the data root
and the exit-code table."""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

import numpy as np
import pytest
import torch

from epir_core.errors import BackendUnavailable, CacheError, DeviceUnavailable
from epir_core.exit_codes import ExitCode
from epir_core.files import atomic_path, write_text_atomic
from epir_core.paths import data_root
from epir_core.runtime import ModelCache, RuntimeOptions, make_backend, resolve_device
from epir_core.runtime import backends as runtime_backends

REPO = Path(__file__).resolve().parents[1]
CPU = RuntimeOptions(device="cpu", threads=1)


@pytest.fixture(scope="module")
def model():
    from epir_core import build_model

    torch.manual_seed(0)
    return build_model(num_classes=3).eval()


@pytest.fixture(scope="module")
def onnx_cache(tmp_path_factory) -> ModelCache:
    """One folder for the ONNX tests: each export takes several seconds."""
    return ModelCache(tmp_path_factory.mktemp("runtime") / "cache")


def logits(model, x: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return model(torch.from_numpy(x)).numpy()


def test_torch_backend_returns_the_model_logits(model, tmp_path):
    backend = make_backend(model, "torch", CPU, ModelCache(tmp_path))
    x = np.random.default_rng(0).random((1, 3, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(backend(x), logits(model, x), atol=1e-6)
    assert (backend.name, backend.device, backend.precision) == ("torch", "cpu", "fp32")


def test_input_shape_and_batch_come_from_the_model_config(tmp_path):
    from epir_core import build_model

    small = build_model(num_classes=2, image_size=14, patch_size=7).eval()
    backend = make_backend(small, "torch", RuntimeOptions(device="cpu", batch=3), ModelCache(tmp_path))
    assert backend(np.zeros((3, 3, 14, 14), np.float32)).shape == (3, 2)


def test_a_backend_whose_output_differs_is_refused(model, tmp_path, monkeypatch):
    def wrong(model, device, precision, options, cache, key):
        return lambda x: torch.zeros(x.shape[0], 3)

    monkeypatch.setitem(runtime_backends.BUILDERS, "onnx", wrong)
    with pytest.raises(BackendUnavailable, match="differs from PyTorch"):
        make_backend(model, "onnx", CPU, ModelCache(tmp_path))
    backend = make_backend(model, "auto", CPU, ModelCache(tmp_path))  # auto falls back to eager
    assert backend.name == "torch" and "onnx: output differs" in backend.note


def test_auto_on_cpu_picks_onnx_with_the_threads_asked_for(model, onnx_cache):
    pytest.importorskip("onnxruntime")
    backend = make_backend(model, "auto", RuntimeOptions(device="cpu", threads=2), onnx_cache)
    assert backend.name == "onnx" and backend.threads == 2 and "chosen by auto" in backend.note
    (onnx,) = onnx_cache.folder.glob("*.onnx")
    assert (onnx_cache.folder / f"{onnx.name}.sha256").read_text().strip() == file_sha(onnx)
    x = np.random.default_rng(1).random((1, 3, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(backend(x), logits(model, x), atol=1e-3)


def test_the_shipped_model_runs_mirror_averaged_on_onnx_runtime(tmp_path):
    """epir-live's CPU choice for the shipped checkpoint: the ONNX graph holds the mirror averaging
    the model was calibrated with, and gives the eager logits (make_backend's parity check)."""
    pytest.importorskip("onnxruntime")
    from epir_core.checkpoint import DEFAULT_MODEL_PATH, load_checkpoint

    predictor = load_checkpoint(DEFAULT_MODEL_PATH).predictor
    backend = make_backend(predictor, "auto", CPU, ModelCache(tmp_path))
    assert backend.name == "onnx", backend.note
    x = np.random.default_rng(0).random((1, 3, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(backend(x), logits(predictor, x), atol=1e-4)


def test_a_truncated_onnx_cache_file_is_rebuilt(model, onnx_cache):
    """The bug this replaces: a truncated export failed every later --backend onnx run with exit 5."""
    pytest.importorskip("onnxruntime")
    make_backend(model, "onnx", CPU, onnx_cache)  # built, or found from the test above
    (onnx,) = onnx_cache.folder.glob("*.onnx")
    whole = onnx.read_bytes()
    onnx.write_bytes(whole[: len(whole) // 3])
    backend = make_backend(model, "onnx", CPU, ModelCache(onnx_cache.folder))
    assert "rebuilt damaged cache files" in backend.note and "SHA-256 differs" in backend.note
    assert file_sha(onnx) == (onnx_cache.folder / f"{onnx.name}.sha256").read_text().strip()
    x = np.random.default_rng(2).random((1, 3, 28, 28), dtype=np.float32)
    np.testing.assert_allclose(backend(x), logits(model, x), atol=1e-3)


def file_sha(path: Path) -> str:
    from epir_core.runtime.cache import sha256

    return sha256(path)


def test_compile_keeps_inductors_cache_in_the_private_cache_folder(model, tmp_path, monkeypatch):
    monkeypatch.delenv("TORCHINDUCTOR_CACHE_DIR", raising=False)
    cache = ModelCache(tmp_path / "cache")
    # Building is lazy (torch.compile compiles on the first call); where the kernels will go is set.
    runtime_backends.BUILDERS["compile"](model, "cpu", "fp32", CPU, cache, "k")
    inductor = Path(os.environ["TORCHINDUCTOR_CACHE_DIR"])
    assert inductor == cache.folder / "inductor" and stat.S_IMODE(inductor.stat().st_mode) == 0o700


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal where CUDA is absent")
def test_tensorrt_and_cuda_are_unavailable_without_a_gpu(model, tmp_path):
    with pytest.raises(BackendUnavailable, match="TensorRT needs --device cuda"):
        make_backend(model, "tensorrt", CPU, ModelCache(tmp_path))
    with pytest.raises(DeviceUnavailable):
        make_backend(model, "torch", RuntimeOptions(device="cuda"), ModelCache(tmp_path))
    with pytest.raises(DeviceUnavailable):
        resolve_device("cuda")
    assert resolve_device("auto") == "cpu"
    with pytest.raises(ValueError, match="--device"):
        resolve_device("gpu")


def test_weights_key_follows_the_weights(model):
    from epir_core import build_model

    other = build_model(num_classes=3).eval()
    assert runtime_backends.weights_key(model) == runtime_backends.weights_key(model)
    assert runtime_backends.weights_key(model) != runtime_backends.weights_key(other)


# --- the cache -------------------------------------------------------------------------------------


class Counter:
    """A builder and loader pair that counts builds; load fails on content other than b"good"."""

    def __init__(self):
        self.builds = 0

    def build(self, tmp: Path) -> None:
        self.builds += 1
        tmp.write_bytes(b"good")

    @staticmethod
    def load(path: Path) -> bytes:
        data = path.read_bytes()
        if data != b"good":
            raise ValueError("not a program")
        return data


def test_cache_builds_once_then_loads_after_checking_the_hash(tmp_path):
    cache, counter = ModelCache(tmp_path / "c"), Counter()
    assert cache.get("m.bin", counter.build, counter.load) == b"good"
    assert ModelCache(tmp_path / "c").get("m.bin", counter.build, counter.load) == b"good"
    assert counter.builds == 1
    assert sorted(p.name for p in cache.folder.iterdir()) == ["m.bin", "m.bin.sha256"]  # no temporary left


@pytest.mark.parametrize(
    "damage, reason",
    [
        (lambda p: p.write_bytes(b"go"), "SHA-256 differs"),  # truncated
        (lambda p: Path(f"{p}.sha256").unlink(), "no recorded SHA-256"),  # killed before the hash was written
        (lambda p: (p.write_bytes(b"evil"), Path(f"{p}.sha256").write_text(file_sha(p))), "failed to load"),
    ],
)
def test_a_damaged_cache_file_is_deleted_and_rebuilt(tmp_path, damage, reason):
    cache, counter = ModelCache(tmp_path), Counter()
    cache.get("m.bin", counter.build, counter.load)
    damage(tmp_path / "m.bin")
    again = ModelCache(tmp_path)
    assert again.get("m.bin", counter.build, counter.load) == b"good" and counter.builds == 2
    assert len(again.rebuilt) == 1 and reason in again.rebuilt[0]


def test_a_failed_build_leaves_nothing_in_the_cache(tmp_path):
    def broken(tmp: Path) -> None:
        tmp.write_bytes(b"half")
        raise RuntimeError("export crashed")

    cache = ModelCache(tmp_path / "c")
    with pytest.raises(RuntimeError):
        cache.get("m.bin", broken, Counter.load)
    assert list(cache.folder.iterdir()) == []


def test_cache_folder_is_created_private(tmp_path):
    cache = ModelCache(tmp_path / "a" / "cache")
    assert stat.S_IMODE(cache.folder.stat().st_mode) == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_a_group_or_world_writable_cache_folder_is_refused(tmp_path, mode):
    folder = tmp_path / "shared"
    folder.mkdir()
    folder.chmod(mode)
    with pytest.raises(CacheError, match="writable by group or others"):
        ModelCache(folder)


@pytest.mark.skipif(os.getuid() != 0, reason="only root can give a folder to another user")
def test_a_cache_folder_owned_by_someone_else_is_refused(tmp_path):
    folder = tmp_path / "theirs"
    folder.mkdir(mode=0o700)
    os.chown(folder, 12345, 12345)
    with pytest.raises(CacheError, match="belongs to another user"):
        ModelCache(folder)


# --- shared helpers ----------------------------------------------------------------------------------


def test_atomic_write_replaces_whole_or_leaves_the_old_file(tmp_path):
    path = tmp_path / "report.json"
    write_text_atomic(path, "old")
    with pytest.raises(RuntimeError):
        with atomic_path(path) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert path.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["report.json"]
    with atomic_path(tmp_path / "x.npy") as tmp:
        assert tmp.suffix == ".npy"  # np.save keeps the name
        np.save(tmp, np.arange(3))
    assert np.load(tmp_path / "x.npy").tolist() == [0, 1, 2]


def test_atomic_write_replaces_a_symlink_instead_of_writing_through_it(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "out.json").symlink_to(victim)
    write_text_atomic(tmp_path / "out.json", "{}")
    assert victim.read_text() == "precious" and not (tmp_path / "out.json").is_symlink()


def test_data_root_honours_epir_data(monkeypatch, tmp_path):
    monkeypatch.setenv("EPIR_DATA", str(tmp_path))
    assert data_root() == tmp_path
    monkeypatch.setenv("EPIR_DATA", "")
    assert data_root() == REPO.parent / "shared" / "data"
    monkeypatch.delenv("EPIR_DATA")
    assert data_root() == REPO.parent / "shared" / "data"


def test_readme_documents_every_exit_code_once():
    readme = (REPO / "README.md").read_text()
    rows = dict(re.findall(r"^\| (\d+) \| (.+?) \|$", readme, flags=re.M))
    assert {int(code) for code in rows} == {int(c) for c in ExitCode}
    assert readme.count("| Code | Meaning |") == 1
