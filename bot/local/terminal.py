"""What the shell prints on a terminal: a message as render_text() gives it, with Slack's formatting
shown as terminal styles (rich): *bold*, _italic_, ~strike~, `code` and code blocks, headers,
buttons as buttons (green: primary, red: danger) and shared files."""

from __future__ import annotations

import re

from rich.text import Text

FENCE = "```"
# Slack's inline marks: the mark hugs the text and is not inside a word.
INLINE = re.compile(
    r"(?P<code>`[^`\n]+`)"
    r"|(?<![\w*])\*(?P<bold>[^*\s](?:[^*\n]*[^*\s])?)\*(?![\w*])"
    r"|(?<![\w_])_(?P<italic>[^_\s](?:[^_\n]*[^_\s])?)_(?![\w_])"
    r"|(?<![\w~])~(?P<strike>[^~\s](?:[^~\n]*[^~\s])?)~(?![\w~])"
    r"|(?P<button>\[ [^\]\n]+ \](?P<mark>[+!]?)(?: \([^)\s]+\)| -> \S+))"
)
STYLES = {
    "code": "bold cyan",
    "bold": "bold",
    "italic": "italic",
    "strike": "strike",
    "header": "bold underline",
    "block": "cyan",
    "file": "bold magenta",
    "button": "reverse",
    "button+": "bold white on green",
    "button!": "bold white on red",
}


def styled(text: str) -> Text:
    """`text` (what render_text() returns) with its marks turned into styles."""
    out = Text()
    in_block = False
    for number, line in enumerate(text.split("\n")):
        if number:
            out.append("\n")
        if line.startswith("== ") and line.endswith(" ==") and not in_block:
            out.append(line[3:-3], style=STYLES["header"])
            continue
        if line.startswith("📎 "):
            out.append(line, style=STYLES["file"])
            continue
        in_block = _line(out, line, in_block)
    return out


def _line(out: Text, line: str, in_block: bool) -> bool:
    """Append one line, code-block fences opening and closing within it; returns whether a block is open after it."""
    parts = line.split(FENCE)
    for index, part in enumerate(parts):
        if index:  # a fence was here
            in_block = not in_block
        if not part:
            continue
        if in_block:
            out.append(part, style=STYLES["block"])
        else:
            _inline(out, part)
    return in_block


def _inline(out: Text, text: str) -> None:
    position = 0
    for match in INLINE.finditer(text):
        out.append(text[position : match.start()])
        kind = match.lastgroup if match.lastgroup != "mark" else "button"
        if match.group("button"):
            out.append(match.group("button"), style=STYLES["button" + (match.group("mark") or "")])
        elif kind == "code":
            out.append(match.group("code")[1:-1], style=STYLES["code"])
        elif kind:
            out.append(match.group(kind), style=STYLES[kind])
        position = match.end()
    out.append(text[position:])
