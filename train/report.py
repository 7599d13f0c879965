"""Turn finished fold records into report.json, predictions.csv, a confusion-matrix PNG and a table.

Scores follow the paper: UF1 and UAR on the predictions pooled over all folds of a seed, overall
(Table 1 "Full") and per source data set; several seeds are summarised as mean and sample std.
Calibration (ECE, reliability diagram) pools every held-out prediction of every seed; several seeds
also give a seed ensemble (per sample, the mean of the seeds' calibrated probabilities).
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from epir_core.metrics import confusion_matrix, uar, uf1
from train.calibration import ECE_BINS, expected_calibration_error, reliability_bins
from train.config import SELECTION_NOTES


def fold_record(seed: int, outcome, sample_ids, datasets, labels, group: dict) -> dict:
    """The JSON-ready record of one finished fold (outcome: train.engine.FoldOutcome)."""
    test = outcome.fold.test
    return {
        "seed": seed,
        "subject": outcome.fold.subject,
        "selected_epoch": outcome.selected_epoch,
        "final_loss": outcome.final_loss,
        "group": group,  # {"id", "folds", "epochs", "seconds"}: the batched unit this fold trained in
        "samples": sample_ids[test].tolist(),
        "datasets": datasets[test].tolist(),
        "labels": labels[test].tolist(),
        "preds": outcome.logits.argmax(1).tolist(),
        "logits": np.round(outcome.logits.astype(np.float64), 5).tolist(),
        "probs": np.round(outcome.probs, 6).tolist(),  # softmax of the logits, uncalibrated
        "temperature": round(outcome.temperature, 6),  # 1 unless fitted on the fold's inner-validation subjects
        "calibrated_probs": np.round(outcome.calibrated_probs, 6).tolist(),
        "val": outcome.val,  # the kept weights on the inner-validation subjects; None without them
    }


def build_report(records: list[dict], class_names: tuple[str, ...], spec: dict, folds_total: int, extra: dict) -> dict:
    """folds_total: planned folds over all seeds; extra: run facts (versions, device, ...)."""
    c = len(class_names)
    seeds = sorted({r["seed"] for r in records})
    per_seed = [_seed_scores([r for r in records if r["seed"] == s], s, c) for s in seeds]
    datasets = sorted({d for r in records for d in r["datasets"]})
    selection = spec["train"]["selection"]
    return {
        "protocol": spec["protocol"],
        "database": spec.get("database"),
        "selection": selection,
        "selection_note": SELECTION_NOTES[selection],
        "oracle": selection == "oracle",
        "class_names": list(class_names),
        "overall": _mean_std([s["overall"] for s in per_seed]),
        # A seed still in progress may not have reached every data set yet.
        "per_dataset": {
            d: _mean_std([s["per_dataset"][d] for s in per_seed if d in s["per_dataset"]]) for d in datasets
        },
        "seeds": per_seed,
        "per_fold": [_fold_scores(r, c) for r in records],
        "confusion": _confusion(records, c).tolist(),  # summed over seeds
        "calibration": _calibration(records),
        "ensemble": _ensemble(records, c, len(seeds)) if len(seeds) > 1 else None,
        "complete": len(records) == folds_total,
        "folds_done": len(records),
        "folds_total": folds_total,
        "config": spec,
        "timing": _timing(records),
        # every commit that trained a fold (a resumed run may mix them; "unknown": a fold recorded without one)
        "git_commits": sorted({r["group"].get("git_commit") or "unknown" for r in records}),
        **extra,
    }


def _pooled(records: list[dict]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    y = np.array([v for r in records for v in r["labels"]], dtype=np.int64)
    p = np.array([v for r in records for v in r["preds"]], dtype=np.int64)
    d = np.array([v for r in records for v in r["datasets"]])
    return y, p, d


def _scores(y: np.ndarray, p: np.ndarray, c: int) -> dict:
    return {"uf1": uf1(y, p, c), "uar": uar(y, p, c), "n": int(len(y))}


def _seed_scores(records: list[dict], seed: int, c: int) -> dict:
    y, p, d = _pooled(records)
    return {
        "seed": seed,
        "folds": len(records),
        "overall": _scores(y, p, c),
        "per_dataset": {ds: _scores(y[d == ds], p[d == ds], c) for ds in sorted(set(d.tolist()))},
    }


def calibrated(r: dict) -> list:
    """A fold record's calibrated probabilities (records from before calibration existed: raw)."""
    return r.get("calibrated_probs", r["probs"])


def _pooled_probs(records: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    raw = np.array([p for r in records for p in r["probs"]], dtype=np.float64)
    cal = np.array([p for r in records for p in calibrated(r)], dtype=np.float64)
    return raw, cal


def _calibration(records: list[dict]) -> dict:
    y, _, _ = _pooled(records)
    raw, cal = _pooled_probs(records)
    temperatures = np.array([r.get("temperature", 1.0) for r in records])
    fitted = any(r.get("val") and "val_nll_raw" in r["val"] for r in records)
    return {
        "how": "one temperature per fold, fitted (NLL) on that fold's inner-validation subjects; the held-out "
        "subject is never used" if fitted else "not calibrated: T = 1",
        "bins": ECE_BINS,
        "pooled_over": "every held-out prediction of every seed",
        "accuracy": float(np.mean(raw.argmax(1) == y)),
        "mean_confidence_raw": float(raw.max(1).mean()),
        "mean_confidence_calibrated": float(cal.max(1).mean()),
        "ece_raw": expected_calibration_error(raw, y),
        "ece_calibrated": expected_calibration_error(cal, y),
        "temperature": {
            "geometric_mean": float(np.exp(np.log(temperatures).mean())),
            "median": float(np.median(temperatures)),
            "min": float(temperatures.min()),
            "max": float(temperatures.max()),
        },
    }


def _ensemble(records: list[dict], c: int, seeds: int) -> dict:
    """Scores of the seed ensemble on the samples every seed has predicted."""
    members: dict[str, list] = {}
    for r in records:
        for i, sample in enumerate(r["samples"]):
            members.setdefault(sample, [r["labels"][i], r["datasets"][i], []])[2].append(calibrated(r)[i])
    full = [(y, d, np.mean(p, axis=0)) for y, d, p in members.values() if len(p) == seeds]
    y = np.array([m[0] for m in full], dtype=np.int64)
    d = np.array([m[1] for m in full])
    probs = np.array([m[2] for m in full])
    p = probs.argmax(1)
    return {
        "how": f"mean of the calibrated probabilities of {seeds} seeds, per sample",
        "overall": _scores(y, p, c),
        "per_dataset": {ds: _scores(y[d == ds], p[d == ds], c) for ds in sorted(set(d.tolist()))},
        "ece": expected_calibration_error(probs, y),
    }


def _mean_std(scores: list[dict]) -> dict:
    """Mean over seeds and sample standard deviation (None with one seed)."""
    out: dict = {"seeds": len(scores), "n": scores[0]["n"] if scores else 0}
    for key in ("uf1", "uar"):
        values = np.array([s[key] for s in scores])
        out[key] = float(values.mean()) if len(values) else None
        out[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else None
    return out


def _fold_scores(r: dict, c: int) -> dict:
    y, p, _ = _pooled([r])
    return {
        "seed": r["seed"],
        "subject": r["subject"],
        "dataset": r["datasets"][0],
        "n": len(y),
        "accuracy": float(np.mean(y == p)),
        "uf1": uf1(y, p, c),
        "uar": uar(y, p, c),
        "selected_epoch": r["selected_epoch"],
        "final_loss": r["final_loss"],
    }


def _confusion(records: list[dict], c: int) -> np.ndarray:
    y, p, _ = _pooled(records)
    return confusion_matrix(y, p, c)


def _timing(records: list[dict]) -> dict:
    groups = {(r["seed"], r["group"]["id"]): r["group"] for r in records}
    seconds = sum(g["seconds"] for g in groups.values())
    fold_epochs = sum(g["folds"] * g["epochs"] for g in groups.values())
    return {
        "train_seconds": round(seconds, 2),
        "groups": len(groups),
        "seconds_per_fold_epoch": round(seconds / fold_epochs, 4) if fold_epochs else None,
        "per_group": [{"seed": s, **g} for (s, _), g in groups.items()],
    }


def write_predictions(path: Path, records: list[dict], class_names: tuple[str, ...], selection: str) -> None:
    """One row per held-out sample and seed: integer class ids, the raw and the calibrated class
    probabilities, the fold's temperature, and the model-selection rule (so an oracle file cannot
    pass for an honest one)."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seed", "subject", "sample", "dataset", "label", "pred", *[f"prob_{c}" for c in class_names],
                    *[f"cal_prob_{c}" for c in class_names], "temperature", "selection"])
        for r in records:
            cal = calibrated(r)
            for i, sample in enumerate(r["samples"]):
                w.writerow([r["seed"], r["subject"], sample, r["datasets"][i], r["labels"][i], r["preds"][i], *r["probs"][i],
                            *cal[i], r.get("temperature", 1.0), selection])


def draw_confusion(path: Path, cm: np.ndarray, class_names: tuple[str, ...], title: str) -> None:
    """Rows = true class, columns = predicted; cells shaded by the row-normalised rate (recall on the
    diagonal) and labelled with counts."""
    cell, left, top = 120, 150, 90
    c = len(class_names)
    img = np.full((top + c * cell + 20, left + c * cell + 20, 3), 255, np.uint8)
    rates = cm / np.maximum(cm.sum(axis=1, keepdims=True), 1)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, title, (10, 25), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    cv2.putText(img, "predicted ->", (left, top - 35), font, 0.45, (80, 80, 80), 1, cv2.LINE_AA)
    for j, name in enumerate(class_names):
        cv2.putText(img, name[:12], (left + j * cell + 8, top - 10), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, name[:12], (8, top + j * cell + cell // 2), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    for i in range(c):
        for j in range(c):
            x0, y0 = left + j * cell, top + i * cell
            shade = int(255 - 200 * rates[i, j])
            cv2.rectangle(img, (x0, y0), (x0 + cell, y0 + cell), (255, shade, shade), -1)  # BGR: blue ramp
            cv2.rectangle(img, (x0, y0), (x0 + cell, y0 + cell), (120, 120, 120), 1)
            ink = (255, 255, 255) if rates[i, j] > 0.6 else (0, 0, 0)
            cv2.putText(img, f"{cm[i, j]}", (x0 + 10, y0 + cell // 2), font, 0.7, ink, 2, cv2.LINE_AA)
            cv2.putText(img, f"{rates[i, j]:.2f}", (x0 + 10, y0 + cell // 2 + 28), font, 0.5, ink, 1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")


def draw_reliability(path: Path, records: list[dict], title: str) -> None:
    """Reliability diagrams before and after calibration, side by side: per confidence bin a bar of
    the accuracy (blue) against the diagonal of perfect calibration, the gap to the bin's mean
    confidence in red, and the bin's number of predictions (relative to the fullest bin) in grey below."""
    y, _, _ = _pooled(records)
    raw, cal = _pooled_probs(records)
    side, pad, strip, top = 360, 50, 40, 60
    img = np.full((top + side + strip + 2 * pad, 2 * (side + 2 * pad), 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, title, (10, 22), font, 0.5, (0, 0, 0), 1, cv2.LINE_AA)
    for k, (name, probs) in enumerate((("uncalibrated", raw), ("calibrated", cal))):
        x0, y0 = k * (side + 2 * pad) + pad, top + pad  # the panel's top-left corner; y grows downwards
        ece = expected_calibration_error(probs, y)
        cv2.putText(img, f"{name}: ECE {ece:.3f} ({ECE_BINS} bins, n={len(y)})", (x0, top + 20), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        bins = reliability_bins(probs, y)
        width = side / len(bins)
        for i, b in enumerate(bins):
            if not b["count"]:
                continue
            left, right = int(x0 + i * width) + 1, int(x0 + (i + 1) * width) - 1
            acc_y, conf_y = int(y0 + side * (1 - b["accuracy"])), int(y0 + side * (1 - b["confidence"]))
            cv2.rectangle(img, (left, acc_y), (right, y0 + side), (200, 120, 40), -1)  # BGR: blue bar
            cv2.rectangle(img, (left, min(acc_y, conf_y)), (right, max(acc_y, conf_y)), (60, 60, 220), 1)  # red gap
            share = b["count"] / max(c["count"] for c in bins)  # relative to the fullest bin
            cv2.rectangle(img, (left, y0 + side + strip - int(strip * share)), (right, y0 + side + strip), (150, 150, 150), -1)
        cv2.rectangle(img, (x0, y0), (x0 + side, y0 + side), (0, 0, 0), 1)
        cv2.line(img, (x0, y0 + side), (x0 + side, y0), (0, 0, 0), 1, cv2.LINE_AA)  # perfect calibration
        for tick in (0.0, 0.5, 1.0):
            cv2.putText(img, f"{tick:.1f}", (x0 + int(side * tick) - 10, y0 + side + strip + 18), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
            cv2.putText(img, f"{tick:.1f}", (x0 - 32, y0 + side - int(side * tick) + 4), font, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, "confidence", (x0 + side // 2 - 40, y0 + side + strip + 36), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
        cv2.putText(img, "accuracy", (x0 + 4, y0 + 16), font, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")


def print_table(report: dict, console: Console) -> None:
    oracle = report["oracle"]
    title = f"{report['protocol'].upper()} LOSO · selection: {report['selection']}" + (" (ORACLE: test-set selection)" if oracle else "")
    table = Table(title=title, title_style="bold red" if oracle else "bold")
    for col in ("data", "samples", "UF1", "UAR"):
        table.add_column(col, justify="left" if col == "data" else "right")
    rows = [("Full", report["overall"])] + list(report["per_dataset"].items())
    for name, s in rows:
        table.add_row(name, str(s["n"]), _fmt(s["uf1"], s["uf1_std"]), _fmt(s["uar"], s["uar_std"]))
    console.print(table)
    console.print(f"{report['selection_note']}; folds {report['folds_done']}/{report['folds_total']}, seeds {report['overall']['seeds']}")
    cal = report["calibration"]
    console.print(f"ECE ({cal['bins']} bins) {cal['ece_raw']:.4f} raw, {cal['ece_calibrated']:.4f} calibrated "
                  f"(temperature geometric mean {cal['temperature']['geometric_mean']:.3f}); {cal['how']}")
    if report["ensemble"]:
        ens = report["ensemble"]
        console.print(f"seed ensemble: UF1 {ens['overall']['uf1']:.4f}, UAR {ens['overall']['uar']:.4f}, ECE {ens['ece']:.4f}")


def _fmt(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")
