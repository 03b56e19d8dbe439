"""The Web API methods the bot calls about messages, people and channels, answered as Slack does."""

from __future__ import annotations

from bot.local.slack.blocks import message_content
from bot.local.slack.protocol import ApiError, public, required
from bot.local.slack.state import SlackState


class WebApi(SlackState):
    """auth.test, chat.*, conversations.info, users.info and usergroups.users.list; mixed into LocalSlack."""

    def _auth_test(self, args: dict) -> dict:
        return {
            "ok": True,
            "url": f"https://{self.team_domain}.slack.com/",
            "team": "ERPGo Local",
            "user": self.users[self.bot_user_id]["name"],
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, args: dict) -> dict:
        channel = required(args, "channel", "channel_not_found")
        text, blocks = message_content(args)
        message = self._new_message(channel, text, blocks, args)
        self._store(message, args.get("thread_ts"))
        return {"ok": True, "channel": channel, "ts": message["ts"], "message": public(message)}

    def _chat_update(self, args: dict) -> dict:
        channel = required(args, "channel", "channel_not_found")
        message = self.messages.get((channel, str(args.get("ts") or "")))
        if message is None:
            raise ApiError("message_not_found")
        text, blocks = message_content(args)
        self._edit(message, text if "text" in args else None, blocks if "blocks" in args else None)
        return {
            "ok": True,
            "channel": channel,
            "ts": message["ts"],
            "text": message["text"],
            "message": public(message),
        }

    def _chat_post_ephemeral(self, args: dict) -> dict:
        channel = required(args, "channel", "channel_not_found")
        user = required(args, "user", "user_not_found")
        text, blocks = message_content(args)
        ephemeral = self._new_ephemeral(channel, user, text, blocks, args.get("thread_ts"), "chat.postEphemeral")
        return {"ok": True, "message_ts": ephemeral["ts"]}

    def _chat_get_permalink(self, args: dict) -> dict:
        channel = required(args, "channel", "channel_not_found")
        message = self.messages.get((channel, str(args.get("message_ts") or "")))
        if message is None:
            raise ApiError("message_not_found")
        permalink = f"https://{self.team_domain}.slack.com/archives/{channel}/p{message['ts'].replace('.', '')}"
        if message.get("thread_ts", message["ts"]) != message["ts"]:
            permalink += f"?thread_ts={message['thread_ts']}&cid={channel}"
        return {"ok": True, "channel": channel, "permalink": permalink}

    def _conversations_info(self, args: dict) -> dict:
        channel = required(args, "channel", "channel_not_found")
        return {
            "ok": True,
            "channel": {
                "id": channel,
                "name": self.channel_names.get(channel, channel.lower()),
                "is_channel": channel.startswith("C"),
                "is_private": channel.startswith("G"),
                "is_im": channel.startswith("D"),
                "is_archived": False,
                "is_member": True,
                "created": 1700000000,
                "topic": {"value": ""},
                "purpose": {"value": ""},
            },
        }

    def _users_info(self, args: dict) -> dict:
        user_id = required(args, "user", "user_not_found")
        known = self.users.get(user_id, {})
        name = known.get("name", user_id.lower())
        user = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": known.get("real_name", name),
            "deleted": False,
            "is_bot": False,
            "is_admin": False,
            "tz": "UTC",
            "profile": {"display_name": name, "real_name": known.get("real_name", name), **known.get("profile", {})},
        }
        user.update({k: v for k, v in known.items() if k != "profile"})
        return {"ok": True, "user": user}

    def _usergroups_users_list(self, args: dict) -> dict:
        usergroup = required(args, "usergroup", "invalid_arguments")
        members = self.usergroups.get(usergroup)
        if members is None:
            raise ApiError("no_such_subteam")
        return {"ok": True, "users": list(members)}
