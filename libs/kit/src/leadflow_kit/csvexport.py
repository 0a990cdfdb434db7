"""CSV that is safe to open in a spreadsheet (OWASP "CSV injection").

A cell starting with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return is read as a formula by
Excel, LibreOffice and Google Sheets; text from outside (UTM values come from anonymous visitors)
could then run commands or leak other cells. Such text gets a leading single quote, which the
spreadsheet shows as text. Numbers, also as formatted text ("-2.5"), are written as they are: a
negative number is no formula.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")

Cell = str | int | float | None
# No nested repetition: linear on any input.
_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?(?:[eE][-+]?[0-9]+)?")


def spreadsheet_safe(value: Cell) -> Cell:
    if isinstance(value, str) and value.startswith(FORMULA_TRIGGERS) and not _NUMBER.fullmatch(value):
        return "'" + value
    return value


def to_csv(header: Sequence[str], rows: Iterable[Sequence[Cell]]) -> str:
    """Every export goes through here, header included."""
    out = io.StringIO()
    # RFC 4180's CRLF: the writer then quotes any cell holding a CR too (with "\n" alone it would not,
    # and a bare CR in a cell would start a new row in the reader, one that may begin with "=").
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow([spreadsheet_safe(name) for name in header])
    for row in rows:
        writer.writerow([spreadsheet_safe(cell) for cell in row])
    return out.getvalue()
