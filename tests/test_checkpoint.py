"""The one checkpoint format: round trip, half storage, and a clear error for every bad file."""

from __future__ import annotations

import pytest
import torch

from epir_core import build_model
from epir_core.checkpoint import FORMAT, load_checkpoint, save_checkpoint
from epir_core.errors import CheckpointError
from epir_core.preprocess.recipe import InputRecipe

CLASSES = ("negative", "positive", "surprise")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return build_model("+spt", num_classes=3, drop_path=0.1).eval()


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    return save_checkpoint(
        tmp_path_factory.mktemp("ckpt") / "m.pt", model, CLASSES, InputRecipe.composite(),
        {"fold": "sub01", "torch": torch.__version__},  # a str subclass a safe load would refuse
    )


def test_round_trip_restores_everything(model, saved):
    ckpt = load_checkpoint(saved)
    x = torch.rand(3, 3, 28, 28)
    assert torch.equal(ckpt.model(x), model(x))
    assert ckpt.config == model.config and ckpt.model.config == model.config
    assert ckpt.class_names == CLASSES
    assert ckpt.recipe == InputRecipe.composite()
    assert ckpt.meta == {"fold": "sub01", "torch": str(torch.__version__)}
    assert not ckpt.model.training
    assert all(p.dtype == torch.float32 for p in ckpt.model.parameters())


def test_half_storage_is_smaller_and_close(model, saved, tmp_path):
    half = save_checkpoint(tmp_path / "h.pt", model, CLASSES, InputRecipe.composite(), half=True)
    assert half.stat().st_size < 0.6 * saved.stat().st_size
    ckpt = load_checkpoint(half)
    assert all(p.dtype == torch.float32 for p in ckpt.model.parameters())
    x = torch.rand(3, 3, 28, 28)
    assert torch.allclose(ckpt.model(x), model(x), atol=1e-2)


def test_save_rejects_bad_arguments(model, tmp_path):
    with pytest.raises(ValueError, match="class names"):
        save_checkpoint(tmp_path / "a.pt", model, CLASSES[:2], InputRecipe.composite())
    with pytest.raises(ValueError, match="JSON"):
        save_checkpoint(tmp_path / "b.pt", model, CLASSES, InputRecipe.composite(), {"bad": object()})


class _Payload:
    """Pickles to a call of print: a safe load must refuse it without running it."""

    def __reduce__(self):
        return (print, ("executed",))


def test_bad_files_raise_one_line_checkpoint_errors(model, saved, tmp_path, capsys):
    good = torch.load(saved, weights_only=True)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint at all")
    text = tmp_path / "text.pt"
    text.write_bytes(b"hi\n")  # read as a legacy pickle whose first opcode looks up a missing memo entry
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(saved.read_bytes()[: saved.stat().st_size // 2])
    torch.save(model.state_dict(), tmp_path / "state_dict.pt")
    torch.save({**good, "version": 99}, tmp_path / "future.pt")
    torch.save({"format": FORMAT, "version": 1, "evil": _Payload()}, tmp_path / "evil.pt")
    torch.save({**good, "state_dict": {}}, tmp_path / "empty.pt")
    cases = {
        tmp_path / "missing.pt": "not found",
        junk: "cannot read",
        text: "cannot read",
        truncated: "corrupt",
        tmp_path / "state_dict.pt": "not an EPIR checkpoint",
        tmp_path / "future.pt": "version 99",
        tmp_path / "evil.pt": "cannot read",
        tmp_path / "empty.pt": "damaged",
    }
    for path, message in cases.items():
        with pytest.raises(CheckpointError, match=message) as info:
            load_checkpoint(path)
        assert "\n" not in str(info.value)
    assert "executed" not in capsys.readouterr().out


def test_a_checkpoint_trained_on_mirror_pairs_predicts_from_both(model, tmp_path):
    """train's --tta-flip fits a fold's temperature on the mean logits of each input and its mirror,
    so a checkpoint that says so is run that way; any other runs its bare model."""
    from epir_core.model.mirror import hflip

    x = torch.rand(4, 3, 28, 28)
    plain = load_checkpoint(save_checkpoint(tmp_path / "plain.pt", model, CLASSES, InputRecipe.composite()))
    assert plain.predictor is plain.model
    mirrored = load_checkpoint(save_checkpoint(tmp_path / "m.pt", model, CLASSES, InputRecipe.composite(),
                                               {"train": {"tta_flip": True}}))
    with torch.no_grad():
        both = mirrored.predictor(x)
        assert torch.allclose(both, (model(x) + model(hflip(x))) / 2, atol=1e-5)
        assert torch.allclose(mirrored.predictor(hflip(x)), both, atol=1e-5)  # a mirror changes nothing
        assert not torch.allclose(model(hflip(x)), model(x), atol=1e-3)  # while the bare model sees it


def test_the_shipped_model_labels_every_composite_flow_as_its_mirror(shared_data):
    """A face's expression does not change in a mirror: the shipped model gives each of the 442
    composite flows and its mirror image the same label and calibrated confidence."""
    from epir_core.calibration import calibrated_probabilities
    from epir_core.checkpoint import DEFAULT_MODEL_PATH
    from epir_core.model.mirror import hflip
    from train.data.composite import load_composite

    ckpt = load_checkpoint(DEFAULT_MODEL_PATH)
    x = torch.as_tensor(load_composite(shared_data).inputs)
    with torch.no_grad():
        direct, mirrored = (calibrated_probabilities(ckpt.predictor(i).double().numpy(), ckpt.temperature)
                            for i in (x, hflip(x)))
    assert ckpt.mirror_averaged
    assert (direct.argmax(1) == mirrored.argmax(1)).all()
    assert abs(direct - mirrored).max() < 1e-4
