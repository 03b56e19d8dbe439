"""Block Kit as Slack checks it: the limits it enforces on messages and views, the ids it fills in,
and the message content chat.postMessage accepts."""

from __future__ import annotations

import copy
import secrets
from collections.abc import Callable, Iterator
from typing import Any

from bot.local.slack.protocol import ApiError, json_arg

# Limits Slack enforces on messages (https://docs.slack.dev/reference/block-kit/blocks).
MAX_BLOCKS = 50
MAX_VIEW_BLOCKS = 100  # modals and App Home
MAX_SECTION_TEXT = 3000
MAX_FIELDS = 10
MAX_FIELD_TEXT = 2000
MAX_HEADER_TEXT = 150
MAX_BUTTON_TEXT = 75
MAX_BUTTON_VALUE = 2000
MAX_ID = 255
MAX_URL = 3000
MAX_ACTIONS_ELEMENTS = 25
MAX_CONTEXT_ELEMENTS = 10
MAX_MESSAGE_TEXT = 40000
MAX_INPUT_LABEL = 2000


def message_content(args: dict) -> tuple[str, list | None]:
    """Validate text/blocks like chat.postMessage does; return (text, blocks or None)."""
    text = args.get("text") or ""
    if not isinstance(text, str):
        raise ApiError("invalid_arguments")
    blocks = None
    if "blocks" in args and args["blocks"] not in (None, ""):
        blocks = json_arg(args["blocks"])
        if not isinstance(blocks, list):
            raise ApiError("invalid_blocks_format")
        errors = block_errors(blocks)
        if errors:
            metadata = {"messages": [f"[ERROR] {e}" for e in errors]}
            raise ApiError("invalid_blocks", errors=errors, response_metadata=metadata)
        blocks = with_ids(blocks)
    if not text.strip() and not blocks and not args.get("attachments"):
        raise ApiError("no_text")
    if len(text) > MAX_MESSAGE_TEXT:
        raise ApiError("msg_too_long")
    return text, blocks


def with_ids(blocks: list) -> list:
    """Slack gives every block a block_id and every interactive element an action_id it lacks."""
    blocks = copy.deepcopy(blocks)
    for block in blocks:
        block.setdefault("block_id", secrets.token_urlsafe(4))
        for element in interactive_elements(block):
            element.setdefault("action_id", secrets.token_urlsafe(4))
    return blocks


def interactive_elements(block: dict) -> list[dict]:
    if block.get("type") == "actions":
        return [e for e in block.get("elements") or [] if isinstance(e, dict)]
    if block.get("type") == "input":
        element = block.get("element")
        return [element] if isinstance(element, dict) else []
    accessory = block.get("accessory")
    return [accessory] if isinstance(accessory, dict) and accessory.get("type") not in ("image", None) else []


def iter_buttons(message: dict) -> Iterator[tuple[dict, dict]]:
    for block in message.get("blocks") or []:
        for element in interactive_elements(block):
            if element.get("type") == "button":
                yield block, element


def view_error(*messages: str) -> ApiError:
    return ApiError("invalid_arguments", response_metadata={"messages": [f"[ERROR] {m}" for m in messages]})


# ---------------------------------------------------------------------- validation


def block_errors(blocks: list, *, max_blocks: int = MAX_BLOCKS) -> list[str]:
    """The limits Slack enforces on message (or, with max_blocks=100, view) blocks, as Slack-style
    messages with a json-pointer."""
    errors: list[str] = []
    if len(blocks) > max_blocks:
        errors.append(f"no more than {max_blocks} items allowed [json-pointer:/blocks]")
    block_ids: set[str] = set()
    for i, block in enumerate(blocks):
        where = f"/blocks/{i}"
        if not isinstance(block, dict) or "type" not in block:
            errors.append(f"missing required field: type [json-pointer:{where}]")
            continue
        block_id = block.get("block_id")
        if block_id is not None:
            if block_id in block_ids:
                errors.append(f"duplicate block_id [json-pointer:{where}/block_id]")
            block_ids.add(block_id)
            errors += _length_error(block_id, MAX_ID, f"{where}/block_id")
        checker = _BLOCK_CHECKS.get(block["type"])
        if checker is not None:
            errors += checker(block, where)
    return errors


def _length_error(value: Any, limit: int, where: str) -> list[str]:
    if isinstance(value, str) and len(value) > limit:
        return [f"must be less than {limit + 1} characters [json-pointer:{where}]"]
    return []


def _text_errors(obj: Any, limit: int, where: str, plain_only: bool = False) -> list[str]:
    if not isinstance(obj, dict) or obj.get("type") not in ("plain_text", "mrkdwn"):
        return [f"must provide an object with type plain_text or mrkdwn [json-pointer:{where}]"]
    if plain_only and obj["type"] != "plain_text":
        return [f"must be a plain_text object [json-pointer:{where}/type]"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"must be more than 0 characters [json-pointer:{where}/text]"]
    return _length_error(text, limit, f"{where}/text")


def _check_section(block: dict, where: str) -> list[str]:
    errors: list[str] = []
    fields = block.get("fields")
    if "text" not in block and not fields:
        errors.append(f"must provide either text or fields [json-pointer:{where}]")
    if "text" in block:
        errors += _text_errors(block["text"], MAX_SECTION_TEXT, f"{where}/text")
    if fields is not None:
        if not isinstance(fields, list) or len(fields) > MAX_FIELDS:
            errors.append(f"no more than {MAX_FIELDS} items allowed [json-pointer:{where}/fields]")
        else:
            for j, field in enumerate(fields):
                errors += _text_errors(field, MAX_FIELD_TEXT, f"{where}/fields/{j}")
    if isinstance(block.get("accessory"), dict) and block["accessory"].get("type") == "button":
        errors += _button_errors(block["accessory"], f"{where}/accessory")
    return errors


def _check_header(block: dict, where: str) -> list[str]:
    return _text_errors(block.get("text"), MAX_HEADER_TEXT, f"{where}/text", plain_only=True)


def _check_actions(block: dict, where: str) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_ACTIONS_ELEMENTS:
        return [f"must provide 1 to {MAX_ACTIONS_ELEMENTS} elements [json-pointer:{where}/elements]"]
    errors: list[str] = []
    action_ids: set[str] = set()
    for j, element in enumerate(elements):
        action_id = element.get("action_id") if isinstance(element, dict) else None
        if action_id is not None and action_id in action_ids:
            errors.append(f"duplicate action_id [json-pointer:{where}/elements/{j}/action_id]")
        if action_id is not None:
            action_ids.add(action_id)
        if isinstance(element, dict) and element.get("type") == "button":
            errors += _button_errors(element, f"{where}/elements/{j}")
    return errors


def _check_context(block: dict, where: str) -> list[str]:
    elements = block.get("elements")
    if not isinstance(elements, list) or not 1 <= len(elements) <= MAX_CONTEXT_ELEMENTS:
        return [f"must provide 1 to {MAX_CONTEXT_ELEMENTS} elements [json-pointer:{where}/elements]"]
    return []


def _check_input(block: dict, where: str) -> list[str]:
    errors = _text_errors(block.get("label"), MAX_INPUT_LABEL, f"{where}/label", plain_only=True)
    element = block.get("element")
    if not isinstance(element, dict) or not element.get("type"):
        errors.append(f"missing required field: element [json-pointer:{where}/element]")
    elif element.get("type") == "plain_text_input":
        errors += _length_error(element.get("action_id"), MAX_ID, f"{where}/element/action_id")
        if "initial_value" in element and not isinstance(element["initial_value"], str):
            errors.append(f"must be a string [json-pointer:{where}/element/initial_value]")
    return errors


def _button_errors(button: dict, where: str) -> list[str]:
    errors = _text_errors(button.get("text"), MAX_BUTTON_TEXT, f"{where}/text", plain_only=True)
    errors += _length_error(button.get("value"), MAX_BUTTON_VALUE, f"{where}/value")
    errors += _length_error(button.get("action_id"), MAX_ID, f"{where}/action_id")
    errors += _length_error(button.get("url"), MAX_URL, f"{where}/url")
    if button.get("style") not in (None, "primary", "danger"):
        errors.append(f"must be one of primary, danger [json-pointer:{where}/style]")
    return errors


_BLOCK_CHECKS: dict[str, Callable[[dict, str], list[str]]] = {
    "section": _check_section,
    "header": _check_header,
    "actions": _check_actions,
    "context": _check_context,
    "input": _check_input,
}
