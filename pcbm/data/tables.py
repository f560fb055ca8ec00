"""Reading a dataset's CSV label files, and collecting every problem in them instead of the first.

:func:`read_csv` gives ``(line, cells)`` rows and turns the file-level faults (missing, empty,
not UTF-8, not CSV) into one :class:`~pcbm.errors.InputError` naming the file (and line).
:class:`Problems` collects per-line faults: a dataset opened for training raises them all at once
(the first few, and how many more), one opened by ``pcbm data check`` keeps them so the checker
can report them next to the file checks.

Example:
    >>> problems = Problems(lenient=True)
    >>> problems.add("labels.csv, line 3", "column 'standard': expected 1/0, got 'maybe'")
    >>> problems.raise_any("folder:d")  # lenient: kept, not raised
    >>> problems.items
    [('labels.csv, line 3', "column 'standard': expected 1/0, got 'maybe'")]
"""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

from pcbm.errors import InputError

MAX_SHOWN = 3  # problems quoted in the error of a dataset opened for training


class CsvError(InputError):
    """A CSV file that cannot be read at all; ``where`` is the file (and line), ``detail`` the problem."""

    def __init__(self, where: str, detail: str):
        super().__init__(f"{where}: {detail}")
        self.where, self.detail = where, detail


class Problems:
    """Per-line problems of a dataset's label files, each ``(where, message)``.

    Args:
        lenient: keep the problems (``pcbm data check``) instead of raising them.
    """

    def __init__(self, lenient: bool = False):
        self.lenient = lenient
        self.items: list[tuple[str, str]] = []

    def __len__(self) -> int:
        return len(self.items)

    def add(self, where: str, message: str | InputError) -> None:
        """Record a problem; a message that starts with ``where`` has it removed (it is said once)."""
        message = str(message)
        for glue in (": ", ", "):
            if message.startswith(f"{where}{glue}"):
                message = message[len(where) + len(glue):]
                break
        self.items.append((where, message))

    def fatal(self, where: str, message: str, spec: str) -> None:
        """A problem that stops the file being read: raised now unless lenient (then the caller stops)."""
        self.add(where, message)
        self.raise_any(spec)

    def raise_any(self, spec: str) -> None:
        """Unless lenient, raise one InputError listing the first few problems and how many more."""
        if self.lenient or not self.items:
            return
        shown = "; ".join(f"{w}: {m}" for w, m in self.items[:MAX_SHOWN])
        if len(self.items) == 1:
            raise InputError(shown)
        more = len(self.items) - MAX_SHOWN
        tail = f"; and {more} more" if more > 0 else ""
        raise InputError(f"{len(self.items)} problems in {spec}: {shown}{tail} (run `pcbm data check {spec}` "
                         "to list every problem)")


def _decode_error(path: Path, raw: bytes, e: UnicodeDecodeError) -> CsvError:
    line = raw[: e.start].count(b"\n") + 1
    return CsvError(f"{path}, line {line}", f"not UTF-8 text (byte 0x{raw[e.start]:02x}); save the file as UTF-8 CSV")


def read_csv(path: str | os.PathLike[str], delimiter: str = ",", expect: str = "") -> list[tuple[int, list[str]]]:
    """Rows of a CSV file as ``(line number, stripped cells)``, blank rows left out, header included.

    Args:
        path: the file.
        delimiter: the separator the format uses; a first row of one cell that holds another
            common separator is refused as "wrong delimiter".
        expect: what the header should hold, for the empty-file message.

    Raises:
        CsvError: (an InputError) missing, unreadable, empty, not UTF-8, not CSV, or the wrong delimiter —
        naming the file and, where it applies, the line.
    """
    p = Path(path)
    try:
        raw = p.read_bytes()
    except FileNotFoundError:
        raise CsvError(str(p), "not found") from None
    except OSError as e:
        raise CsvError(str(p), f"cannot read ({e.strerror or e})") from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise _decode_error(p, raw, e) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise CsvError(f"{p}, line {line}", "contains NUL bytes; not a text CSV file")
    rows: list[tuple[int, list[str]]] = []
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    start = 1
    try:
        for values in reader:
            cells = [v.strip() for v in values]
            if any(cells):
                rows.append((start, cells))
            start = reader.line_num + 1
    except csv.Error as e:
        raise CsvError(f"{p}, line {reader.line_num}", f"not valid CSV ({e})") from None
    if not rows:
        raise CsvError(str(p), f"empty file{f' (expected {expect})' if expect else ''}")
    first = rows[0][1]
    others = [d for d in (",", ";", "\t") if d != delimiter and d in first[0]]
    if len(first) == 1 and others:
        name = {",": "','", ";": "';'", "\t": "tab"}
        raise CsvError(f"{p}, line {rows[0][0]}", f"wrong delimiter: the file is {name[others[0]]}-separated, "
                       f"expected {name[delimiter]}-separated")
    return rows


def new_file_name(name: str, column: str, seen: dict[str, int], line: int, log: Problems, at: str,
                  what: str = "image") -> bool:
    """Whether ``name`` (a cell of ``column`` on ``line``) is a plain file name not listed before;
    otherwise the problem is added to ``log`` at ``at``. A new name is recorded in ``seen``."""
    if not name or Path(name).name != name or name in (".", ".."):
        log.add(at, f"column {column}: {name!r} must be a file name, not a path")
        return False
    if name in seen:
        log.add(at, f"{what} {name!r} is already listed on line {seen[name]}")
        return False
    seen[name] = line
    return True


def header_columns(table: list[tuple[int, list[str]]], path: Path, required: tuple[str, ...] | list[str],
                   log: Problems, at: str, hint: str = "") -> dict[str, int] | None:
    """Column name -> index of a read table's header (the first of repeated names), or None with a
    fatal problem logged when a ``required`` column is missing (``hint`` is added to the message)."""
    header_line, header = table[0]
    missing = [c for c in required if c not in header]
    if missing:
        log.fatal(f"{path}, line {header_line}", f"missing column(s) {', '.join(missing)} "
                  f"(found: {', '.join(header) or 'nothing'}{hint})", at)
        return None
    return {h: i for i, h in reversed(list(enumerate(header)))}
