"""Private keys, also when the text starts or ends in the middle of one."""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterator

from bot.core.redact.base import PRIVATE_KEY_MASK, _replace_spans

_PEM_MARKER = re.compile(r"-----(BEGIN|END) (?:[A-Z0-9]{1,20} ){0,4}PRIVATE KEY(?: BLOCK)?-----")
_LINE_SEP = re.compile(r"\r?\n|\\r\\n|\\n")
_PEM_LINE = re.compile(r"=?[A-Za-z0-9+/]{1,80}={0,2}")
_PEM_HEADER = re.compile(r"(?:Proc-Type|DEK-Info|Version|Comment): .{0,200}")
FULL_LINE_SHAPE = "[A-Za-z0-9+/]{60}"  # what a key's body without its markers holds
_PEM_FULL_LINE = re.compile(r"(?m)(?:^|(?<=\\n))[ \t]*+[A-Za-z0-9+/]{60,76}[ \t]*+\r?(?=\n|\\[rn]|\Z)")


def _lines_forward(text: str, pos: int, limit: int) -> Iterator[tuple[int, int]]:
    """(start, end) of each line from pos (the first is the rest of pos's line), separators as in PEM or JSON."""
    while pos <= limit:
        sep = _LINE_SEP.search(text, pos, limit)
        end = sep.start() if sep else limit
        yield pos, end
        if not sep:
            return
        pos = sep.end()


def _pem_line(text: str, start: int, stop: int) -> str:
    line = text[start:stop].strip()
    return line[:-2].rstrip() if line.endswith("\\r") else line


def _is_full_line(line: str) -> bool:
    return 60 <= len(line) <= 76


def _looks_like_base64(line: str) -> bool:
    """A partial base64 line rather than a word that happens to use the same letters (`before`, `Done`)."""
    return any(c.isdigit() or c in "+/=" for c in line) or (
        any(c.isupper() for c in line[1:]) and any(c.islower() for c in line)
    )


def _pem_body_end(text: str, pos: int, limit: int) -> int:
    """Where a key body that starts at pos ends: PEM headers, then full base64 lines and the short last one."""
    end, in_body = pos, False
    for index, (start, stop) in enumerate(_lines_forward(text, pos, limit)):
        line = _pem_line(text, start, stop)
        if not line:
            if index == 0 or not in_body:
                continue  # the rest of the BEGIN line; the blank line after PEM headers
            break
        if not in_body and _PEM_HEADER.fullmatch(line):
            end = stop
            continue
        if not _PEM_LINE.fullmatch(line):
            break
        if _is_full_line(line):
            in_body, end = True, stop
            continue
        if _looks_like_base64(line):
            end = stop
        break
    return end


def _line_before(text: str, cursor: int, floor: int) -> tuple[int, int]:
    """(start of the line that ends at cursor, start of the separator before it or -1 at the floor)."""
    newline, escaped = text.rfind("\n", floor, cursor), text.rfind("\\n", floor, cursor)
    if newline < 0 and escaped < 0:
        return floor, -1
    if escaped >= 0 and escaped + 2 > newline + 1:
        return escaped + 2, escaped
    return newline + 1, newline


def _pem_body_start(text: str, end: int, floor: int) -> int:
    """Where a key body that ends at `end` begins: walk back over the short last line, full base64 lines and
    the partial line the text may start with."""
    start, cursor, taken = end, end, 0
    while cursor > floor:
        line_start, separator = _line_before(text, cursor, floor)
        line = _pem_line(text, line_start, cursor)
        if line:
            if not _PEM_LINE.fullmatch(line):
                break
            full = _is_full_line(line)
            if not full and not _looks_like_base64(line):
                break
            start, taken = line_start, taken + 1
            if not full and taken > 1:
                break  # the partial first line of the body
        elif cursor != end:
            break  # a blank line above the body
        if separator < 0:
            break
        cursor = separator
    return start


def mask_private_keys(text: str) -> str:
    spans: list[tuple[int, int, str]] = []
    markers = list(_PEM_MARKER.finditer(text)) if "PRIVATE KEY" in text else []
    floor, index = 0, 0
    while index < len(markers):
        marker = markers[index]
        following = markers[index + 1] if index + 1 < len(markers) else None
        if marker.group(1) == "BEGIN" and following is not None and following.group(1) == "END":
            spans.append((marker.start(), following.end(), PRIVATE_KEY_MASK))
            floor, index = following.end(), index + 2
            continue
        if marker.group(1) == "BEGIN":
            limit = following.start() if following is not None else len(text)
            end = _pem_body_end(text, marker.end(), limit)
            spans.append((marker.start(), end, PRIVATE_KEY_MASK))
            floor = end
        else:
            spans.append((_pem_body_start(text, marker.start(), floor), marker.end(), PRIVATE_KEY_MASK))
            floor = marker.end()
        index += 1
    spans += _bare_key_bodies(text, spans)
    return _replace_spans(text, spans)


def _bare_key_bodies(text: str, taken: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Two or more consecutive full base64 lines with neither BEGIN nor END in view: the middle of a key."""
    found: list[tuple[int, int, str]] = []
    run: list[re.Match[str]] = []
    starts, ends = [s for s, _, _ in taken], [e for _, e, _ in taken]  # in text order, not overlapping

    def close_run() -> None:
        if len(run) >= 2:
            start, end = run[0].start(), run[-1].end()
            before = bisect.bisect_right(ends, start)  # spans [0, before) end at or before the run
            if before == len(starts) or starts[before] >= end:
                start = _pem_body_start(text, start, ends[before - 1] if before else 0)
                end = _pem_body_end(text, end, starts[before] if before < len(starts) else len(text))
                found.append((start, end, PRIVATE_KEY_MASK))
        run.clear()

    for line in _PEM_FULL_LINE.finditer(text):
        if run and not _LINE_SEP.fullmatch(text[run[-1].end() : line.start()].strip(" \t\r") or "x"):
            close_run()
        run.append(line)
    close_run()
    return found
