"""The exit statuses every command of the project shares: the same failure gives the same number
whichever command met it (the README's "Exit codes" table is this one)."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1
    USAGE = 2
    SOURCE = 3
    MODEL = 4
    DEVICE = 5
    OUTPUT = 6
    PARTIAL = 7
    INTERRUPTED = 130

    @property
    def meaning(self) -> str:
        return MEANINGS[self]


MEANINGS = {
    ExitCode.OK: "done",
    ExitCode.FAILED: "an unexpected error (one line on stderr; epir-live's metadata says what happened)",
    ExitCode.USAGE: "bad or conflicting option, or input data the command cannot use",
    ExitCode.SOURCE: "the live source cannot be opened or read (missing/corrupt/empty video, frames "
    "changing size, camera lost)",
    ExitCode.MODEL: "the model file is missing or not an EPIR checkpoint",
    ExitCode.DEVICE: "the requested device or backend is not available here",
    ExitCode.OUTPUT: "an output or cache folder cannot be used or written (another run there, a symlink, "
    "unsafe permissions, a closed stdout pipe)",
    ExitCode.PARTIAL: "partial: some inputs of a batch failed; the others are done (videos.csv says which "
    "and why)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C); what was finished is kept",
}


def exit_help(*codes: ExitCode) -> str:
    """The lines of a command's --help that list the codes it can return."""
    return "\n".join(f"  {int(c):<3} {c.meaning}" for c in sorted(codes))
