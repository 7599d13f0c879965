"""EPIR live: spot and recognise micro-expressions in videos and camera streams.

The Python entry points are in realtime.api (see the README): analyze_video, stream, analyze_videos,
and the event writers."""

from realtime.api import BatchResult, analyze_video, analyze_videos, find_videos, stream
from realtime.outputs import write_events_csv, write_events_jsonl
from realtime.pipeline import Event, LiveConfig
from realtime.session import Analyzer
from realtime.timeline import draw_timeline

__all__ = [
    "Analyzer",
    "BatchResult",
    "Event",
    "LiveConfig",
    "analyze_video",
    "analyze_videos",
    "draw_timeline",
    "find_videos",
    "stream",
    "write_events_csv",
    "write_events_jsonl",
]
