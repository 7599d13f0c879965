"""Turn finished fold records into report.json, predictions.csv, a confusion-matrix PNG and a table.

Scores follow the paper: UF1 and UAR on the predictions pooled over all folds of a seed, overall
(Table 1 "Full") and per source data set; several seeds are summarised as mean and sample std.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np
from rich.console import Console
from rich.table import Table

from epir_core.metrics import confusion_matrix, uar, uf1
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
        "preds": outcome.probs.argmax(1).tolist(),
        "probs": np.round(outcome.probs.astype(np.float64), 6).tolist(),
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
        "complete": len(records) == folds_total,
        "folds_done": len(records),
        "folds_total": folds_total,
        "config": spec,
        "timing": _timing(records),
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
    """One row per held-out sample and seed: integer class ids, the class probabilities, and the
    model-selection rule (so an oracle file cannot pass for an honest one)."""
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["seed", "subject", "sample", "dataset", "label", "pred", *[f"prob_{c}" for c in class_names], "selection"])
        for r in records:
            for i, sample in enumerate(r["samples"]):
                w.writerow([r["seed"], r["subject"], sample, r["datasets"][i], r["labels"][i], r["preds"][i], *r["probs"][i], selection])


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


def _fmt(mean: float | None, std: float | None) -> str:
    if mean is None:
        return "-"
    return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")
