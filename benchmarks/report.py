"""A benchmark record as rich tables (for people, on stderr) and as a dated JSON line (for comparison)."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table


def append_jsonl(record: dict, path: Path) -> None:
    """Append the record as one line, so a file collects runs to compare over time."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as f:
        f.write(json.dumps(record, sort_keys=True) + "\n")


def render(record: dict, console: Console) -> None:
    env = record["environment"]
    console.print(
        f"[bold]epir-bench[/] {record['config']['mode']} on {record['config']['device']} - {env['cpu']} "
        f"({env['cpu_count']} cores), GPU {env['gpu'] or 'none'}, threads {env['threads']}, "
        f"torch {env['versions']['torch']}, commit {(env['git_commit'] or 'unknown')[:10]}"
        f"{' (dirty)' if env['git_dirty'] else ''}"
    )
    if env["load_average_1m"] > 0.5 * env["cpu_count"]:
        console.print(f"[yellow]warning: the machine was busy (load {env['load_average_1m']:.1f} on "
                      f"{env['cpu_count']} cores): CPU timings are unreliable[/]")
    model = record["model"]
    if model["status"] != "ok":
        console.print(f"model: skipped - {model['reason']}")
    else:
        console.print(_complexity_table(model["complexity"], record["reference"]))
        console.print(_latency_table(model["latency"]))
        if model["breakdown"]:
            console.print(_breakdown_table(model["breakdown"]))
    if record["pipeline"]["status"] == "ok":
        console.print(_stage_table(record["pipeline"]))
    else:
        console.print(f"pipeline: failed - {escape(record['pipeline']['reason'])}")
    console.print(_goal_table(record["goals"]))
    console.print(f"done in {record['elapsed_s']:.1f} s")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}" if value < 1 else f"{value:.2f}"


def _complexity_table(rows: list[dict], ref: dict) -> Table:
    t = Table(title="Model size (paper, Table 1: EPIR 7.03 M params / 84.03 M FLOPs; HTNet 214.6 M FLOPs)")
    for col in ("preset", "params", "MACs (\"FLOPs\")", "vs paper"):
        t.add_column(col, justify="left" if col == "preset" else "right")
    for r in rows:
        vs = ""
        if r["preset"] == "epir" and r["macs"] is not None:
            vs = f"{r['params'] / ref['epir_params']:.4f}x params, {r['macs'] / ref['epir_flops']:.4f}x MACs"
        macs = f"{r['macs']:,}" if r["macs"] is not None else f"- ({escape(r['macs_reason'])})"
        t.add_row(r["preset"], f"{r['params']:,}", macs, vs)
    t.caption = f"counter: {rows[0]['macs_counter'] or 'none'}; HTNet is not re-measured here" if rows else ""
    return t


def _latency_table(rows: list[dict]) -> Table:
    t = Table(title="Model latency (warm-up, then median / p95 of the runs)")
    for col in ("preset", "backend", "device", "threads", "batch", "dtype", "median ms", "p95 ms", "per sample ms",
                "peak mem MB", "setup s", "note"):
        t.add_column(col, justify="left" if col in ("preset", "backend", "device", "dtype", "note") else "right")
    for r in rows:
        if r["status"] != "ok":
            t.add_row(r["preset"], r["backend"], r["device"], "-", str(r["batch"]), r["dtype"], "-", "-", "-", "-", "-",
                      f"{r['status']}: {escape(r['reason'])}")
            continue
        mem = "-" if r["peak_memory_bytes"] is None else f"{r['peak_memory_bytes'] / 2**20:.1f}"
        t.add_row(r["preset"], r["backend"], r["device"], str(r["threads"] or "-"), str(r["batch"]), r["dtype"],
                  _ms(r["median_ms"]),
                  _ms(r["p95_ms"]), _ms(r["per_sample_ms"]), mem, f"{r['setup_s']:.1f}", f"{r['runs']} runs")
    return t


def _breakdown_table(b: dict) -> Table:
    t = Table(title=f"Where one eager batch-1 forward's {b['total_ms']:.2f} ms go (module hooks, median)")
    for col in ("part", "kind", "ms", "share"):
        t.add_column(col, justify="right" if col in ("ms", "share") else "left")
    groups: dict[str, dict] = {}  # "ti_blocks.3" -> "ti_blocks": blocks of one list are shown summed
    for r in b["modules"]:
        g = groups.setdefault(r["module"].split(".")[0], {"kind": r["kind"], "ms": 0.0, "share": 0.0, "n": 0})
        g["ms"] += r["median_ms"]
        g["share"] += r["share"]
        g["n"] += 1
    for name, g in groups.items():
        t.add_row(name if g["n"] == 1 else f"{name} (x{g['n']})", g["kind"], _ms(g["ms"]), f"{100 * g['share']:.0f} %")
    return t


def _stage_table(p: dict) -> Table:
    t = Table(title=f"Pipeline stages on {p['frame_size'][0]}x{p['frame_size'][1]} frames ({escape(p['clip']['face'])})")
    for col in ("stage", "variant", "device", "median ms", "p95 ms", "note"):
        t.add_column(col, justify="right" if "ms" in col else "left")
    for r in p["stages"]:
        note = f"{r['runs']} runs" if r["status"] == "ok" else f"{r['status']}: {escape(r['reason'])}"
        t.add_row(r["stage"], r["variant"], r["device"], _ms(r["median_ms"]), _ms(r["p95_ms"]), note)
    e = p["end_to_end"]
    if e["status"] == "ok":
        lat = e["apex_to_label_ms"]
        rec = e["recognise_ms"]
        t.add_row("end to end", f"{e['frames']} frames, model backend {e['backend']}"
                  + (f", {e['backend_threads']} thread(s)" if e["backend_threads"] else ""), "", "", "",
                  f"{e['fps_sustained']:.1f} fps sustained; {e['events_spotted']}/{e['events_expected']} events; "
                  + (f"apex->label median {_ms(lat['median_ms'])} ms, of which recognition "
                     f"{_ms(rec['median_ms'])} ms" if lat else escape(e["reason"])))
    else:
        t.add_row("end to end", "", "", "-", "-", f"{e['status']}: {escape(e['reason'])}")
    return t


def _goal_table(goals: list[dict]) -> Table:
    t = Table(title="Goals")
    for col in ("goal", "target", "measured", "status", "margin", "note"):
        t.add_column(col)
    for g in goals:
        cmp = ">=" if g["higher_is_better"] else "<"
        measured = "-" if g["measured"] is None else f"{g['measured']:.2f} {g['unit']}"
        margin = "-" if g["margin"] is None else f"{g['margin']:+.2f} {g['unit']}"
        colour = {"met": "green", "missed": "red"}.get(g["status"], "yellow")
        t.add_row(g["description"], f"{cmp} {g['target']:g} {g['unit']}", measured, f"[{colour}]{g['status']}[/]",
                  margin, escape(g["reason"] or ""))
    return t


def render_spotting(record: dict, console: Console) -> None:
    """The spotting benchmark: recall per amplitude, precision, F1, false events, apex error, cost."""
    s = record["summary"]
    table = Table(title="Spotting (IoU >= 0.5 with a true interval is a hit)")
    table.add_column("measure")
    table.add_column("value", justify="right")
    for amplitude, recall in s["recall_per_amplitude_px"].items():
        table.add_row(f"recall at {amplitude} px (260 px face)", _value(recall))
    for fps, recall in s["recall_per_fps"].items():
        table.add_row(f"recall at {fps} fps", _value(recall))
    for name in ("precision", "f1", "f1_2_to_4px", "false_events_in_micro_clips", "false_per_min_distractors"):
        table.add_row(name.replace("_", " "), _value(s[name]))
    for fps, error in s["apex_error_frames"].items():
        table.add_row(f"apex error at {fps} fps (frames, median / max)", f"{error['median']:g} / {error['max']}")
    held = s["held"]
    table.add_row("held apex: recall at 1 / 2 / 3 / 4 px",
                  " / ".join(_value(r) for r in held["recall_per_amplitude_px"].values()))
    for fps, error in held["apex_error_frames"].items():
        table.add_row(f"held apex: error at {fps} fps (frames from the hold's start, median / max)",
                      f"{error['median']:g} / {error['max']}")
    timed = s.get("casme3_timed")
    if timed and timed.get("status") == "not_measured":
        table.add_row("timed as CAS(ME)^3's sheet", escape(f"not measured: {timed['reason']}"))
    elif timed and timed["recall"] is not None:
        table.add_row("timed as CAS(ME)^3's sheet: recall at 1 / 2 / 3 / 4 px",
                      " / ".join(_value(r) for r in timed["recall_per_amplitude_px"].values()))
    table.add_row("tracking + spotting per frame (ms, median / max clip)",
                  f"{s['cost_ms_per_frame']['median']:.2f} / {s['cost_ms_per_frame']['max']:.2f}")
    table.add_row("real CASME II clip", escape(s["real_clip"]["status"]))
    console.print(table)
    targets = Table(title="Targets")
    targets.add_column("target")
    targets.add_column("met")
    for name, met in s["targets"].items():
        targets.add_row(escape(name), "[green]yes[/]" if met else "[red]no[/]")
    console.print(targets)


def _value(v) -> str:
    return "-" if v is None else f"{v:g}" if isinstance(v, (int, float)) else str(v)
