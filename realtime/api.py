"""The Python entry points: analyse a video, stream events from any source, or run a batch of videos.

    import realtime
    events = realtime.analyze_video("clip.mp4")            # list[realtime.Event]
    for event in realtime.stream(0):                        # camera 0, events as they happen
        print(event.label, event.apex_s, event.regions[:2])
    result = realtime.analyze_videos(["a.mp4", "b.mp4"], "runs/")

Errors: CheckpointError (model), BackendUnavailable or DeviceUnavailable (backend or device),
CacheError (an unsafe cache folder), SourceError (the source cannot be opened or read), OutputError
(an output cannot be written); all one line. In a batch a video that fails is reported on stderr and
skipped, and BatchResult.failed names it.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from realtime.outputs import OutputError, event_header, event_row, open_new
from realtime.pipeline import Event, LiveConfig
from realtime.session import Analyzer, Source, reason
from realtime.sources import SourceError

VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv")


def analyze_video(path: str | Path, model: str | Path | None = None, backend: str = "auto", device: str = "auto",
                  fps: float | None = None, progress: bool = True, output: str | Path | None = None,
                  config: LiveConfig = LiveConfig(), analyzer: Analyzer | None = None) -> list[Event]:
    """Every event of a video file (or a folder of images, with fps), in order.

    model None is the shipped checkpoint; `output` also writes the run folder (events.jsonl,
    frames.csv, metadata.json, timeline.png); `analyzer` reuses a loaded model for many calls."""
    analyzer = analyzer or Analyzer(model, backend, device, config)
    with _progress(progress, analyzer.err) as bar:
        return _analyze(analyzer, path, fps, output, bar)


def stream(source: Source, model: str | Path | None = None, backend: str = "auto", device: str = "auto",
           fps: float | None = None, realtime: bool = False, output: str | Path | None = None,
           config: LiveConfig = LiveConfig(), analyzer: Analyzer | None = None) -> Iterator[Event]:
    """Yield events as they are recognised. source: a camera index, a video file, a folder of images,
    or an iterable of H x W x 3 uint8 BGR frames (then fps is required). Stopping the iteration
    (break) closes the source and the outputs."""
    analyzer = analyzer or Analyzer(model, backend, device, config)
    with analyzer.open(source, fps=fps, realtime=realtime, output=output) as run:
        for result in run:
            yield from result.events
        yield from run.finish()


@dataclass
class BatchResult:
    events: dict[str, list[Event]] = field(default_factory=dict)  # video -> its events, for the videos done
    folders: dict[str, Path] = field(default_factory=dict)  # video -> its output folder (failed ones too)
    failed: dict[str, str] = field(default_factory=dict)  # video -> the one-line reason
    summary: Path | None = None  # events.csv: one row per event, with its video


def find_videos(folder: str | Path) -> list[Path]:
    """The video files under folder, recursively, in sorted order (VIDEO_SUFFIXES, any case); raises
    SourceError when folder is not a folder."""
    if not Path(folder).is_dir():
        raise SourceError(f"videos folder not found: {folder}")
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in VIDEO_SUFFIXES)


def analyze_videos(paths: Sequence[str | Path], out_dir: str | Path, model: str | Path | None = None,
                   backend: str = "auto", device: str = "auto", fps: float | None = None, progress: bool = True,
                   config: LiveConfig = LiveConfig(), analyzer: Analyzer | None = None,
                   annotate: bool = False) -> BatchResult:
    """Analyse each video into out_dir/<name>/ (a run folder; `annotate` adds annotated.mp4) with one
    model load, and write out_dir/events.csv (one row per event: its video first) and out_dir/videos.csv
    (one row per video: status, events, reason). A video that fails, whatever the reason, is reported
    in one line and skipped; a Ctrl-C stops the batch. Raises OutputError when out_dir cannot be written."""
    analyzer = analyzer or Analyzer(model, backend, device, config)
    out_dir = Path(out_dir)
    result = BatchResult(summary=out_dir / "events.csv")
    names = analyzer.class_names
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        ef, vf = open_new(result.summary, newline=""), open_new(out_dir / "videos.csv", newline="")
    except OSError as e:
        raise OutputError(f"--output: {out_dir}: {e.strerror or e}") from e
    # Both tables are appended to and flushed video by video: an interrupted batch keeps what is done.
    with ef, vf, _progress(progress, analyzer.err) as bar:
        events_csv, videos_csv = csv.writer(ef), csv.writer(vf)
        events_csv.writerow(["video", *event_header(names)])
        videos_csv.writerow(["video", "status", "events", "folder", "reason"])
        videos = bar.add_task("videos", total=len(paths))
        for video, folder in zip(paths, _folder_names(paths, out_dir)):
            key = str(video)
            result.folders[key] = folder
            try:
                events = _analyze(analyzer, video, fps, folder, bar, annotate)
            except Exception as e:  # noqa: BLE001 - one video's failure, whatever it is, must not end the batch
                why = result.failed[key] = reason(e)
                analyzer.err.print(f"[red]failed:[/red] {escape(f'{video}: {why}')}", highlight=False)
                videos_csv.writerow([key, "failed", "", folder if folder.exists() else "", why])
            else:
                result.events[key] = events
                events_csv.writerows([key, *event_row(e, names)] for e in events)
                videos_csv.writerow([key, "done", len(events), folder, ""])
            ef.flush()
            vf.flush()
            bar.advance(videos)
    return result


def _analyze(analyzer: Analyzer, path, fps, output, bar: Progress, annotate: bool = False) -> list[Event]:
    events: list[Event] = []
    with analyzer.open(path, fps=fps, output=output, annotate=annotate) as run:
        frames = bar.add_task(Path(path).name, total=run.source.length)
        try:
            for result in run:
                events += result.events
                bar.advance(frames)
            events += run.finish()
        finally:
            bar.remove_task(frames)
    return events


def _folder_names(paths: Sequence[str | Path], out_dir: Path) -> list[Path]:
    """out_dir/<stem>, with -2, -3, ... added for videos of the same name from different folders."""
    used: set[str] = set()
    folders = []
    for path in paths:
        stem = Path(path).stem or "video"
        name, n = stem, 1
        while name in used:
            n += 1
            name = f"{stem}-{n}"
        used.add(name)
        folders.append(out_dir / name)
    return folders


def _progress(enabled: bool, console: Console) -> Progress:
    """Bars on stderr over videos and frames; disabled, it is silent but still counts."""
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(),
                    console=console, disable=not enabled, transient=True)
