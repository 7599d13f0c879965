"""LOSO: honest splits, batched training, the CLI's outputs, resume, the oracle label, the default-model fit.

Runs use a narrow model (dim 32 instead of 256) through the real code path, so the tests measure
behaviour, not the 2-core CPU's speed."""

import csv
import json

import cv2
import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import train.session
from epir_core import PRESETS, provenance
from epir_core.checkpoint import load_checkpoint
from epir_core.metrics import uar, uf1
from train import fit, loso, results
from train.config import TrainConfig
from train.data.composite import load_composite
from train.datasource import DataSourceError, load_samples
from train.engine import train_group
from train.folds import Fold, group_folds, loso_folds

TINY = {"dim": 32, "dim_head": 8, "mlp_dim": 64}
TINY_ARGS = [arg for k, v in TINY.items() for arg in ("--model-set", f"{k}={v}")]
runner = CliRunner()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny models gain nothing from a second thread, and on a busy 2-core machine OpenMP's
    spinning threads slowed these tests 10-40x."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def composite(shared_data):
    return load_composite(shared_data)


def _loso(shared_data, out, *args):
    return runner.invoke(loso.app, ["--data", str(shared_data), "--out", str(out), "--device", "cpu", *TINY_ARGS, *args])


def test_composite_loads_as_documented(composite):
    assert composite.inputs.shape == (442, 3, 28, 28) and composite.inputs.dtype == np.float32
    assert len(set(composite.subjects.tolist())) == 68
    assert np.bincount(composite.labels).tolist() == [250, 109, 83]
    # channel means of (u, v, strain) measured on the files (flow-and-data.md): RGB order, not BGR
    assert composite.inputs.mean(axis=(0, 2, 3)) == pytest.approx([0.494, 0.531, 0.100], abs=2e-3)


def test_split_never_puts_a_subject_on_two_sides(composite):
    folds = loso_folds(composite.subjects, composite.datasets, seed=0, val_fraction=0.15)
    assert len(folds) == 68
    for f in folds:
        sides = [set(composite.subjects[i].tolist()) for i in (f.train, f.val, f.test)]
        assert sides[2] == {f.subject}
        assert not (sides[0] & sides[1] or sides[0] & sides[2] or sides[1] & sides[2])
        assert len(f.train) + len(f.val) + len(f.test) == len(composite)
        assert set(composite.datasets[f.val].tolist()) == {"casme2", "samm", "smic"}  # stratified


def test_groups_share_the_number_of_steps_per_epoch():
    folds = [Fold(str(n), np.arange(n), np.arange(0), np.arange(1)) for n in (60, 64, 65, 100, 128)]
    groups = group_folds(folds, group_size=2, batch_size=32)
    assert sorted(f.subject for g in groups for f in g) == sorted(f.subject for f in folds)
    for g in groups:
        assert len(g) <= 2 and len({f.steps_per_epoch(32) for f in g}) == 1


# Every training extra that draws no randomness inside the model (dropout and stochastic depth draw
# from one stream shared by the group, so they are the one thing that differs with grouping).
EXTRAS = dict(flip=True, rotate=10.0, mixup=0.4, label_smoothing=0.1, weight_decay=0.05, ema=0.9, class_balance=True,
              schedule="cosine", tta_flip=True)


@pytest.mark.parametrize("extras", [{}, EXTRAS], ids=["paper", "extras"])
def test_batched_folds_equal_separate_runs(composite, extras):
    subset = composite.subset(np.isin(composite.subjects, ["sub01", "sub02", "006", "007", "s01", "s02"]))
    folds = loso_folds(subset.subjects, subset.datasets, seed=3, only=["sub01", "006"])
    # 40 and 32 training samples: two steps each, the second padded for fold "006" (20 vs 12 rows)
    cfg = TrainConfig(epochs=2, batch_size=20, model=TINY, **extras)
    args = (subset.inputs, subset.labels, 3, cfg, 3, torch.device("cpu"))
    together = train_group(folds, *args)
    apart = [train_group([f], *args)[0] for f in folds]
    for a, b in zip(together, apart):
        np.testing.assert_allclose(a.probs, b.probs, atol=1e-5)
        for k in a.state_dict:
            torch.testing.assert_close(a.state_dict[k], b.state_dict[k], atol=1e-5, rtol=1e-4)
    # and the folds really trained differently (distinct seeds, data)
    assert not torch.equal(together[0].state_dict["head.weight"], together[1].state_dict["head.weight"])


@pytest.mark.parametrize("options", [{"selection": "last"}, {"selection": "val"}, {"calibrate": True, **EXTRAS}], ids=["last", "val", "calibrated"])
def test_honest_selection_never_looks_at_the_held_out_labels(composite, options):
    subset = composite.subset(np.isin(composite.subjects, ["sub01", "sub02", "006", "007", "s01", "s02"]))
    cfg = TrainConfig(epochs=3, batch_size=64, model=TINY | {"drop_path": 0.1}, **options)
    folds = loso_folds(subset.subjects, subset.datasets, seed=1, only=["s01"], val_fraction=0.3 if cfg.needs_val else 0)
    scrambled = subset.labels.copy()
    scrambled[folds[0].test] = (scrambled[folds[0].test] + 1) % 3  # every held-out label changed
    runs = [train_group(folds, subset.inputs, y, 3, cfg, 1, torch.device("cpu"))[0] for y in (subset.labels, scrambled)]
    np.testing.assert_array_equal(runs[0].logits, runs[1].logits)
    assert runs[0].selected_epoch == runs[1].selected_epoch and runs[0].temperature == runs[1].temperature
    assert (runs[0].temperature != 1.0) == cfg.calibrate


def test_data_sources_for_each_protocol(shared_data):
    smic = load_samples("sde", "smic", shared_data, None)
    assert len(smic) == 164 and set(smic.datasets.tolist()) == {"smic"} and smic.class_names == ("negative", "positive", "surprise")
    with pytest.raises(DataSourceError, match="^--prepared"):
        load_samples("sde", "casme3", shared_data, None)
    with pytest.raises(DataSourceError, match="^--database"):
        load_samples("cde", "smic", shared_data, None)
    with pytest.raises(DataSourceError, match="^--database"):
        load_samples("sde", None, shared_data, None)


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_ablation_preset_trains_batched(composite, preset):
    subset = composite.subset(np.isin(composite.subjects, ["sub01", "006", "s01"]))
    folds = loso_folds(subset.subjects, subset.datasets, seed=0)
    cfg = TrainConfig(preset=preset, epochs=1, batch_size=32, selection="oracle", model=TINY)
    outcomes = train_group(folds, subset.inputs, subset.labels, 3, cfg, 0, torch.device("cpu"))
    for o in outcomes:
        assert o.probs.shape == (len(o.fold.test), 3) and np.isfinite(o.final_loss)
        np.testing.assert_allclose(o.probs.sum(1), 1, atol=1e-5)


def test_two_fold_run_writes_a_complete_report_and_resumes(shared_data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    result = _loso(shared_data, out, "--folds", "sub01,s03", "--epochs", "2", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and report["folds_done"] == 2 and not report["oracle"]
    assert report["selection"] == "last" and summary["overall"] == report["overall"]
    assert set(report["per_dataset"]) == {"casme2", "smic"}
    assert {"config", "versions", "timing", "per_fold", "seeds"} <= set(report)
    assert [f["selected_epoch"] for f in report["per_fold"]] == [2, 2]

    with (out / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 + 39  # sub01 and s03 held-out samples
    assert {"subject", "sample", "dataset", "label", "pred", "prob_negative", "prob_positive", "prob_surprise"} <= set(rows[0])
    y = np.array([int(r["label"]) for r in rows])
    p = np.array([int(r["pred"]) for r in rows])
    assert report["overall"]["uf1"] == pytest.approx(uf1(y, p, 3))
    assert report["overall"]["uar"] == pytest.approx(uar(y, p, 3))
    assert cv2.imread(str(out / "confusion.png")) is not None
    ckpt = load_checkpoint(out / "seed-0" / "checkpoints" / "s03.pt")
    assert ckpt.class_names == ("negative", "positive", "surprise") and ckpt.meta["held_out_subject"] == "s03"

    # Same folder without --resume: refused. With --resume and one more fold: only that fold trains.
    assert _loso(shared_data, out, "--folds", "sub01,s03", "--epochs", "2").exit_code == 6
    assert _loso(shared_data, out, "--folds", "sub01", "--epochs", "3", "--resume").exit_code == 6  # other recipe
    trained = []
    real = train.session.train_group
    monkeypatch.setattr(train.session, "train_group", lambda folds, *a, **k: trained.extend(f.subject for f in folds) or real(folds, *a, **k))
    result = _loso(shared_data, out, "--folds", "sub01,s03,006", "--epochs", "2", "--resume", "--no-checkpoints")
    assert result.exit_code == 0, result.output
    assert trained == ["006"]
    assert json.loads((out / "report.json").read_text())["folds_done"] == 3


def test_several_seeds_report_while_a_seed_is_part_done(shared_data, tmp_path):
    # On the CPU each fold is its own group and the report is rewritten after every group, so seed 1
    # is reported while it has seen only the first data set; a repeated fold counts once.
    out = tmp_path / "run"
    result = _loso(shared_data, out, "--folds", "s18,sub01,s18", "--seeds", "0,1", "--epochs", "1", "--no-checkpoints")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["complete"] and report["folds_done"] == report["folds_total"] == 4
    assert report["per_dataset"]["casme2"]["seeds"] == report["per_dataset"]["smic"]["seeds"] == 2


def test_an_unreadable_run_json_exits_6_with_one_line(shared_data, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "run.json").write_text('{"protocol": "cd')  # truncated by a crash mid-write
    result = _loso(shared_data, out, "--folds", "sub01", "--epochs", "1", "--resume")
    assert result.exit_code == 6 and "run.json" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_interrupted_run_keeps_finished_folds(shared_data, tmp_path, monkeypatch):
    out = tmp_path / "run"
    real = train.session.train_group

    def interrupt_second_group(folds, *a, **k):
        if folds[0].subject == "sub02":
            raise KeyboardInterrupt
        return real(folds, *a, **k)

    monkeypatch.setattr(train.session, "train_group", interrupt_second_group)
    result = _loso(shared_data, out, "--folds", "sub01,sub02", "--epochs", "1", "--group-size", "1", "--no-checkpoints")
    assert result.exit_code == 130 and "--resume" in result.output
    report = json.loads((out / "report.json").read_text())
    assert not report["complete"] and [f["subject"] for f in report["per_fold"]] == ["sub01"]


def test_oracle_selection_is_labelled_everywhere(shared_data, tmp_path):
    out = tmp_path / "oracle"
    result = _loso(shared_data, out, "--folds", "sub01", "--epochs", "2", "--select", "oracle", "--no-checkpoints")
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    assert report["oracle"] and report["selection"] == "oracle" and "ORACLE" in report["selection_note"]
    assert "ORACLE" in result.output  # the terminal table's title
    with (out / "predictions.csv").open() as f:
        assert {r["selection"] for r in csv.DictReader(f)} == {"oracle"}
    assert report["per_fold"][0]["selected_epoch"] in (1, 2)


def test_bad_data_root_exits_2_naming_the_option(tmp_path):
    result = runner.invoke(loso.app, ["--data", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert result.output.strip().count("\n") == 0 and "--data" in result.output
    result = runner.invoke(loso.app, ["--data", str(tmp_path), "--out", str(tmp_path / "o"), "--folds", "x"])
    assert result.exit_code == 2 and "--data" in result.output  # exists, but holds no composite


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the exit code where CUDA is absent")
def test_cuda_without_a_gpu_exits_5_as_in_every_command(tmp_path):
    for command in (loso.app, fit.app):
        result = runner.invoke(command, ["--device", "cuda", "--out", str(tmp_path / "o")])
        assert result.exit_code == 5 and "no CUDA" in result.output and result.output.count("\n") == 1


def test_calibrated_augmented_run_writes_calibration_everywhere(shared_data, tmp_path):
    out = tmp_path / "cal"
    options = ["--flip", "--rotate", "10", "--mixup", "0.2", "--label-smoothing", "0.1", "--ema", "0.9", "--tta-flip"]
    result = _loso(shared_data, out, "--folds", "sub01,s03", "--epochs", "2", "--select", "val", "--calibrate", *options)
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    cal = report["calibration"]
    assert cal["bins"] == 15 and "inner-validation" in cal["how"] and 0 <= cal["ece_calibrated"] <= 1
    assert report["config"]["train"]["flip"] and report["config"]["train"]["calibrate"]
    assert report["versions"]["git_commit"] == provenance.git_commit()[0]
    assert report["git_commits"] == [provenance.git_commit()[0] or "unknown"]  # the commit that trained the folds
    with (out / "predictions.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 3 + 39
    assert ["seed", "subject", "sample", "dataset", "label", "pred"] == list(rows[0])[:6]
    assert {f"{kind}prob_{c}" for kind in ("", "cal_") for c in ("negative", "positive", "surprise")} <= set(rows[0])
    for r in rows:  # the calibrated probabilities are softmax(logits / T) of the same logits: same argmax
        raw = np.array([float(r[f"prob_{c}"]) for c in ("negative", "positive", "surprise")])
        cal_p = np.array([float(r[f"cal_prob_{c}"]) for c in ("negative", "positive", "surprise")])
        assert raw.argmax() == cal_p.argmax() == int(r["pred"]) and float(r["temperature"]) > 0
    assert cv2.imread(str(out / "reliability.png")) is not None
    record = json.loads((out / "seed-0" / "folds" / "s03.json").read_text())
    assert record["val"]["n"] > 0 and record["temperature"] == pytest.approx(load_checkpoint(out / "seed-0" / "checkpoints" / "s03.pt").temperature)


def test_results_table_pick_select_and_a_fit_from_a_run(shared_data, tmp_path):
    runs = [tmp_path / "plain", tmp_path / "flip"]
    for run, extra in zip(runs, ([], ["--flip"])):
        args = ("--folds", "sub01,s03", "--epochs", "1", "--select", "val", "--calibrate", "--no-checkpoints", *extra)
        assert _loso(shared_data, run, *args).exit_code == 0
    scores = [{f["subject"]: json.loads((r / "seed-0" / "folds" / f"{f['subject']}.json").read_text())["val"]["uf1"]
               for f in json.loads((r / "report.json").read_text())["per_fold"]} for r in runs]

    picked = runner.invoke(results.app, ["pick", *map(str, runs)])
    assert picked.exit_code == 0, picked.output
    means = [np.mean(list(s.values())) for s in scores]
    assert picked.stdout.strip() == str(runs[int(np.argmax(means))])

    out = tmp_path / "selected"
    selected = runner.invoke(results.app, ["select", *map(str, runs), "--out", str(out)])
    assert selected.exit_code == 0, selected.output
    report = json.loads((out / "report.json").read_text())
    assert report["selection"] == "inner-val-config" and report["folds_done"] == 2
    for subject, run in ((k.split("/")[1], v) for k, v in report["chosen"].items()):
        assert run == str(runs[int(np.argmax([s[subject] for s in scores]))])
    assert (out / "predictions.csv").exists() and (out / "reliability.png").exists()

    table = tmp_path / "experiments.md"
    written = runner.invoke(results.app, ["table", *map(str, runs), str(out), "--out", str(table)])
    assert written.exit_code == 0, written.output
    lines = [line for line in table.read_text().splitlines() if line.startswith("| ")][2:]  # after header and rule
    assert [line.split(" | ")[0].removeprefix("| ") for line in lines] == ["plain", "flip", "selected"]
    assert "flip=True" in lines[1] and "inner-val" in lines[2]
    assert runner.invoke(results.app, ["select", str(runs[0]), "--out", str(runs[1])]).exit_code == 6  # a LOSO run

    model = tmp_path / "model.pt"
    fitted = runner.invoke(fit.app, ["--data", str(shared_data), "--out", str(model), "--device", "cpu", "--recipe-from", str(runs[1])])
    assert fitted.exit_code == 0, fitted.output
    ckpt = load_checkpoint(model)
    run_report = json.loads((runs[1] / "report.json").read_text())
    assert ckpt.temperature == pytest.approx(run_report["calibration"]["temperature"]["geometric_mean"])
    assert ckpt.meta["train"]["flip"] and ckpt.meta["train"]["selection"] == "last" and ckpt.config.dim == 32
    refused = runner.invoke(fit.app, ["--data", str(shared_data), "--out", str(model), "--recipe-from", str(out)])
    assert refused.exit_code == 2 and "per-fold" in refused.output


def test_fit_writes_a_loadable_default_model(shared_data, tmp_path):
    path = tmp_path / "model.pt"
    result = runner.invoke(fit.app, ["--data", str(shared_data), "--out", str(path), "--epochs", "1", "--device", "cpu", *TINY_ARGS])
    assert result.exit_code == 0, result.output
    ckpt = load_checkpoint(path)
    assert ckpt.meta["trained_by"] == "train.fit" and "442 samples" in ckpt.meta["data"]
    assert ckpt.config.dim == 32 and ckpt.class_names == ("negative", "positive", "surprise")
    assert ckpt.model(torch.rand(2, 3, 28, 28)).shape == (2, 3)
    assert ckpt.temperature == 1.0  # nothing to fit a temperature on without --recipe-from
