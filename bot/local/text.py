"""Plain-text rendering of a Slack message (text + Block Kit), for the terminal shell.

Buttons show as ``[ Approve ]+ (approval.approve)``: ``+`` marks a primary button, ``!`` a
danger one, and the action_id in brackets is what the shell's "click" refers to. A shared file
shows as ``📎 <title> (<n> lines)`` followed by the first lines of its preview.
"""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

_ANGLE = re.compile(r"<([^<>|]+)(?:\|([^<>]*))?>")
_STYLE_MARK = {"primary": "+", "danger": "!"}


def render_text(message: dict) -> str:
    """Turn a Slack message dict into readable plain text, roughly as Slack would show it."""
    blocks = message.get("blocks") or []
    # Slack shows the blocks when there are any; `text` is then only the notification fallback.
    lines = _render_blocks(blocks) if blocks else _split(mrkdwn_to_text(message.get("text") or ""))
    for attachment in message.get("attachments") or []:
        lines += ["| " + line for line in _render_attachment(attachment)]
    for file in message.get("files") or []:
        lines += _render_file(file)
    return "\n".join(lines)


def _render_file(file: dict) -> list[str]:
    """``📎 <title> (<n> lines)`` and the first lines Slack previews, like a shared snippet."""
    title = file.get("title") or file.get("name") or file.get("id")
    count = file.get("lines")
    heading = f"📎 {title}" if not isinstance(count, int) else f"📎 {title} ({count} line{'' if count == 1 else 's'})"
    lines = [heading] + ["  " + line for line in _split(file.get("preview") or "")]
    more = file.get("lines_more")
    if isinstance(more, int) and more > 0:
        lines.append(f"  … {more} more line{'' if more == 1 else 's'}")
    return lines


# The shortcodes the bot itself uses, shown as the pictures Slack would show.
EMOJI = {
    "large_green_circle": "🟢",
    "large_yellow_circle": "🟡",
    "red_circle": "🔴",
    "white_circle": "⚪",
    "white_check_mark": "✅",
    "x": "❌",
    "warning": "⚠️",
    "wrench": "🔧",
    "grey_question": "❔",
    "hourglass_flowing_sand": "⏳",
    "no_entry": "⛔",
    "lock": "🔒",
    "rotating_light": "🚨",
    "fire": "🔥",
    "information_source": "ℹ️",
    "bell": "🔔",
    "mag": "🔍",
    "stopwatch": "⏱️",
}
_SHORTCODE = re.compile(r":([a-z0-9_+-]+):")


def mrkdwn_to_text(text: str) -> str:
    """``<url|label>`` → ``label (url)``, ``<@U1>`` → ``@U1``, ``<#C1|ops>`` → ``#ops``, known
    emoji shortcodes → emoji, and unescapes."""
    text = _SHORTCODE.sub(lambda m: EMOJI.get(m.group(1), m.group(0)), text)
    return html.unescape(_ANGLE.sub(_angle_to_text, text))


def _angle_to_text(match: re.Match) -> str:
    target, label = match.group(1), match.group(2)
    if target[0] in "@#":
        return target[0] + (label.lstrip(target[0]) if label else target[1:])
    if target.startswith("!"):
        # <!here>, <!channel>, <!subteam^S1|@oncall>, <!date^1700000000^{date}|fallback>
        return label if label else "@" + target[1:].split("^")[0]
    if label and label != target:
        return f"{label} ({target})"
    return target


def _split(text: str) -> list[str]:
    return text.splitlines() if text else []


def _text_of(obj: Any) -> str:
    if not isinstance(obj, dict):
        return ""
    text = obj.get("text") or ""
    return mrkdwn_to_text(text) if obj.get("type") == "mrkdwn" else text


def _render_blocks(blocks: list) -> list[str]:
    lines: list[str] = []
    for block in blocks:
        render = _BLOCK_RENDERERS.get(block.get("type"), _render_unknown)
        lines += render(block)
    return lines


def _render_header(block: dict) -> list[str]:
    return [f"== {_text_of(block.get('text'))} =="]


def _render_section(block: dict) -> list[str]:
    lines = _split(_text_of(block.get("text")))
    lines += [line for field in block.get("fields") or [] for line in _split(_text_of(field))]
    accessory = block.get("accessory")
    if accessory:
        lines.append(_render_element(accessory))
    return lines


def _render_context(block: dict) -> list[str]:
    parts = [_render_element(element) for element in block.get("elements") or []]
    return ["  " + " · ".join(part for part in parts if part)]


def _render_divider(block: dict) -> list[str]:
    return ["-" * 40]


def _render_actions(block: dict) -> list[str]:
    return ["  ".join(_render_element(element) for element in block.get("elements") or [])]


def _render_image(block: dict) -> list[str]:
    return [f"[image: {block.get('alt_text', '')}]"]


def _render_unknown(block: dict) -> list[str]:
    return [f"[{block.get('type', 'unknown')} block]"]


def _render_element(element: dict) -> str:
    kind = element.get("type")
    if kind == "button":
        label = f"[ {_text_of(element.get('text'))} ]{_STYLE_MARK.get(element.get('style') or '', '')}"
        if element.get("url"):
            return f"{label} -> {element['url']}"
        return f"{label} ({element.get('action_id', '?')})"
    if kind == "image":
        return f"[image: {element.get('alt_text', '')}]"
    if kind in ("mrkdwn", "plain_text"):
        return _text_of(element)
    return f"[{kind}]"


def _render_rich_text(block: dict) -> list[str]:
    lines: list[str] = []
    for element in block.get("elements") or []:
        lines += _RICH_RENDERERS.get(element.get("type"), lambda e: [f"[{e.get('type')}]"])(element)
    return lines


def _rich_inline(elements: list) -> str:
    parts = []
    for element in elements or []:
        kind = element.get("type")
        if kind == "text":
            parts.append(element.get("text", ""))
        elif kind == "link":
            url, label = element.get("url", ""), element.get("text")
            parts.append(f"{label} ({url})" if label and label != url else url)
        elif kind == "user":
            parts.append(f"@{element.get('user_id')}")
        elif kind == "channel":
            parts.append(f"#{element.get('channel_id')}")
        elif kind == "emoji":
            parts.append(f":{element.get('name')}:")
        elif kind == "broadcast":
            parts.append(f"@{element.get('range')}")
        else:
            parts.append(element.get("text") or f"[{kind}]")
    return "".join(parts)


def _rich_list(element: dict) -> list[str]:
    ordered = element.get("style") == "ordered"
    return [
        f"{f'{n}.' if ordered else '-'} {_rich_inline(item.get('elements'))}"
        for n, item in enumerate(element.get("elements") or [], start=1)
    ]


_RICH_RENDERERS: dict[str, Callable[[dict], list[str]]] = {
    "rich_text_section": lambda e: _split(_rich_inline(e.get("elements") or [])),
    "rich_text_preformatted": lambda e: ["```", *_split(_rich_inline(e.get("elements") or [])), "```"],
    "rich_text_quote": lambda e: ["> " + line for line in _split(_rich_inline(e.get("elements") or []))],
    "rich_text_list": _rich_list,
}

_BLOCK_RENDERERS: dict[str, Callable[[dict], list[str]]] = {
    "header": _render_header,
    "section": _render_section,
    "context": _render_context,
    "divider": _render_divider,
    "actions": _render_actions,
    "image": _render_image,
    "rich_text": _render_rich_text,
}


def _render_attachment(attachment: dict) -> list[str]:
    if attachment.get("blocks"):
        return _render_blocks(attachment["blocks"])
    lines = _split(mrkdwn_to_text(attachment.get("title") or ""))
    lines += _split(mrkdwn_to_text(attachment.get("text") or attachment.get("fallback") or ""))
    return lines
