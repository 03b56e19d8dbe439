"""Files and views: the three steps of files_upload_v2 (files.getUploadURLExternal, the POST to the
upload URL, files.completeUploadExternal) with the message Slack posts for a share, and views.publish."""

from __future__ import annotations

import mimetypes
import secrets
import time
from typing import Any

from aiohttp import web

from bot.local.slack.blocks import MAX_VIEW_BLOCKS, block_errors, view_error, with_ids
from bot.local.slack.protocol import ApiError, json_arg, required
from bot.local.slack.state import SlackState

# Lines of a text file Slack shows in the message before "N more lines" (the file's `preview`).
FILE_PREVIEW_LINES = 5
# Keys kept on recorded files for the tests' convenience; Slack's file objects do not carry them.
LOCAL_FILE_KEYS = ("content", "length", "channel", "thread_ts", "message_ts", "initial_comment")


class Files(SlackState):
    """files.* and views.*; mixed into LocalSlack."""

    def _files_get_upload_url(self, args: dict) -> dict:
        filename = args.get("filename")
        try:
            length = int(args.get("length") or "")
        except (TypeError, ValueError):
            length = None
        if not filename or length is None:
            raise ApiError("invalid_arguments")
        file_id = "F" + secrets.token_hex(5).upper()
        self.files[file_id] = {"id": file_id, "name": filename, "length": length, "content": None}
        if args.get("snippet_type"):
            self.files[file_id]["snippet_type"] = args["snippet_type"]
        return {"ok": True, "upload_url": f"{self.base_url}/upload/v1/{file_id}", "file_id": file_id}

    def _upload(self, file_id: str, content: bytes | None) -> dict:
        file = self.files.get(file_id)
        if file is None:
            raise ApiError("file_not_found", status=404)
        if content is None:
            raise ApiError("no_file_data", status=400)
        file.update(content=content, size=len(content))
        return {"ok": True, "file_id": file_id, "size": len(content)}

    def _files_complete_upload(self, args: dict) -> dict:
        items = json_arg(args.get("files"))
        if not isinstance(items, list) or not items:
            raise ApiError("invalid_arguments")
        records = [self._uploaded_file(item) for item in items]  # all checked before any is completed
        for record, item in zip(records, items, strict=False):
            self._complete_file(record, item)
        channel = args.get("channel_id") or (args.get("channels") or "").split(",")[0]
        if channel:
            self._share_files(channel, records, args.get("initial_comment") or "", args.get("thread_ts"))
        return {"ok": True, "files": [file_object(record) for record in records]}

    def _uploaded_file(self, item: Any) -> dict:
        file = self.files.get(item.get("id", "")) if isinstance(item, dict) else None
        if file is None or file["content"] is None:
            raise ApiError("file_not_found")
        return file

    def _complete_file(self, file: dict, item: dict) -> None:
        content: bytes = file["content"]
        text = as_text(content)
        now = int(time.time())
        fallback_type = "text/plain" if text is not None else "application/octet-stream"
        file.update(
            title=item.get("title") or file["name"],
            user=self.bot_user_id,
            created=now,
            timestamp=now,
            mimetype=mimetypes.guess_type(file["name"])[0] or fallback_type,
            filetype=file.get("snippet_type") or ("text" if text is not None else binary_filetype(file["name"])),
            mode="snippet" if text is not None else "hosted",
            is_external=False,
            size=len(content),
            url_private=f"{self.base_url}/files-pri/{self.team_id}-{file['id']}/{file['name']}",
            permalink=f"https://{self.team_domain}.slack.com/files/{self.bot_user_id}/{file['id']}/{file['name']}",
        )
        file["url_private_download"] = file["url_private"] + "?download=1"
        if text is not None:
            lines = text.splitlines()
            preview = lines[:FILE_PREVIEW_LINES]
            file.update(
                preview="\n".join(preview),
                lines=len(lines),
                lines_more=len(lines) - len(preview),
                preview_is_truncated=len(lines) > len(preview),
            )

    def _share_files(self, channel: str, files: list[dict], comment: str, thread_ts: str | None) -> None:
        """Post the message Slack posts for shared files: the initial comment, carrying the file objects."""
        message = self._new_message(channel, comment, None, {})
        self._store(message, thread_ts)
        root = message.get("thread_ts")
        for file in files:
            share = {"ts": message["ts"], "channel_name": self.channel_names.get(channel, channel.lower())}
            if root:
                share["thread_ts"] = root
            file.update(channels=[channel], shares={"public": {channel: [share]}})
            file.update(channel=channel, thread_ts=root, message_ts=message["ts"], initial_comment=comment)
        message.update(files=[file_object(file) for file in files], upload=True, display_as_bot=False)

    def _views_publish(self, args: dict) -> dict:
        user_id = required(args, "user_id", "invalid_arguments")
        view = json_arg(args.get("view"))
        if not isinstance(view, dict) or view.get("type") != "home" or not isinstance(view.get("blocks"), list):
            raise view_error("must provide a home view with blocks [json-pointer:/view]")
        errors = block_errors(view["blocks"], max_blocks=MAX_VIEW_BLOCKS)
        if errors:
            raise view_error(*errors)
        current = self.home_views.get(user_id)
        if args.get("hash") and (current is None or args["hash"] != current["hash"]):
            raise ApiError("hash_conflict")
        published = {
            **{k: view[k] for k in ("private_metadata", "callback_id", "external_id", "title") if k in view},
            "id": current["id"] if current else "V" + secrets.token_hex(5).upper(),
            "team_id": self.team_id,
            "type": "home",
            "blocks": with_ids(view["blocks"]),
            "hash": f"{time.time():.6f}.{secrets.token_hex(4)}",
            "app_id": self.app_id,
            "bot_id": self.bot_id,
            "user": user_id,
        }
        self.home_views[user_id] = published
        return {"ok": True, "view": published}


async def upload_content(request: web.Request) -> bytes | None:
    """The uploaded bytes: the first file part of a multipart form, else the raw body."""
    if request.content_type != "multipart/form-data":
        return await request.read()
    form = await request.post()
    for value in form.values():
        if isinstance(value, web.FileField):
            data: bytes = value.file.read()
            return data
    return None


def as_text(content: bytes) -> str | None:
    """The content as text when it is UTF-8 without NULs (what Slack shows as a snippet), else None."""
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError:
        return None
    return None if "\x00" in text else text


def binary_filetype(filename: str) -> str:
    """Slack's filetype of a binary file: its extension ("png"), else "binary"."""
    _stem, dot, extension = filename.rpartition(".")
    return extension.lower() if dot and extension.isalnum() else "binary"


def file_object(file: dict) -> dict:
    return {k: v for k, v in file.items() if k not in LOCAL_FILE_KEYS}
