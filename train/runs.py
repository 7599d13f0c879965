"""The output folder of a LOSO run, and resuming it.

    OUT/run.json                          what is trained (protocol, data, recipe); fixed at the first start
    OUT/seed-<s>/checkpoints/<subject>.pt one checkpoint per fold (epir_core.checkpoint format)
    OUT/seed-<s>/folds/<subject>.json     the fold's held-out predictions; its presence marks the fold done
    OUT/predictions.csv, report.json, confusion.png   rewritten after every group of folds

A fold's JSON is written last and atomically, so an interrupted run never leaves a fold that looks
done but is not. Seeds and the fold subset are not part of run.json: a resumed run may add seeds or
folds to the same folder, but never change what a fold trains.
"""

from __future__ import annotations

import json
from pathlib import Path

from epir_core.files import write_text_atomic


class RunFolderError(Exception):
    """The output folder holds a different run, or a run that --resume was not asked to continue."""


class RunFolder:
    def __init__(self, path: Path):
        self.path = Path(path)

    @property
    def spec_path(self) -> Path:
        return self.path / "run.json"

    def start(self, spec: dict, resume: bool) -> None:
        """Create the folder for `spec`, or check that an existing one was made for the same spec."""
        if self.spec_path.exists():
            try:
                stored = json.loads(self.spec_path.read_text())
            except json.JSONDecodeError as exc:
                raise RunFolderError(f"--out {self.path}: run.json is unreadable ({exc}): use a new --out") from exc
            if not resume:
                raise RunFolderError(f"--out {self.path} already holds a run: pass --resume to continue it, or choose a new --out")
            changed = sorted(k for k in set(stored) | set(spec) if stored.get(k) != spec.get(k))
            if changed:
                raise RunFolderError(f"--out {self.path} holds a run with different {', '.join(changed)}: use a new --out")
            return
        self.path.mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.spec_path, json.dumps(spec, indent=1))

    def checkpoint_path(self, seed: int, subject: str) -> Path:
        return self.path / f"seed-{seed}" / "checkpoints" / f"{subject}.pt"

    def fold_path(self, seed: int, subject: str) -> Path:
        return self.path / f"seed-{seed}" / "folds" / f"{subject}.json"

    def is_done(self, seed: int, subject: str) -> bool:
        return self.fold_path(seed, subject).exists()

    def save_fold(self, seed: int, subject: str, record: dict) -> None:
        write_text_atomic(self.fold_path(seed, subject), json.dumps(record, indent=1))  # atomic: done or not

    def fold_records(self, seeds: list[int], subjects: list[str]) -> list[dict]:
        """The finished folds among the requested ones, in seed then subject order."""
        return [
            json.loads(self.fold_path(s, sub).read_text())
            for s in seeds
            for sub in subjects
            if self.is_done(s, sub)
        ]
