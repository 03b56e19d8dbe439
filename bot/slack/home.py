"""The bot's App Home tab, as each person sees it: the alert groups firing (with links to their
threads), the approvals they may decide, and the commands they ran lately."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from slack_sdk.models.blocks import Block, DividerBlock, HeaderBlock

from bot.slack.render import MAX_SECTION, clip, context, escape, section

MAX_VIEW_BLOCKS = 100
MAX_LISTED = 10


@dataclass
class HomeGroup:
    title: str
    severity: str
    summary: str
    firing: int
    since: datetime
    link: str | None  # the thread's permalink, once Slack has it
    acked_by: str | None = None


@dataclass
class HomeApproval:
    id: int
    summary: str
    action: str
    requester: str
    expires_at: datetime
    link: str | None
    review_due: datetime | None = None  # ran under break glass: reviewed by then


@dataclass
class HomeCommand:
    at: datetime
    verb: str
    text: str
    channel: str


def _date(when: datetime) -> str:
    fallback = when.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(when.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def _user(user: str) -> str:
    return f"<@{user}>" if user[:1] in "UW" and user.isalnum() else escape(user)


def _lines(lines: list[str], empty: str) -> list[Block]:
    """Sections of at most MAX_SECTION characters holding `lines`, or one saying `empty`."""
    if not lines:
        return [section(empty)]
    blocks: list[Block] = []
    chunk = ""
    for line in lines:
        if chunk and len(chunk) + len(line) + 1 > MAX_SECTION:
            blocks.append(section(chunk))
            chunk = ""
        chunk += line + "\n"
    blocks.append(section(chunk))
    return blocks


def group_line(group: HomeGroup) -> str:
    title = f"<{group.link}|{escape(group.title)}>" if group.link else escape(group.title)
    severity = f" ({escape(group.severity)})" if group.severity else ""
    summary = f" — {escape(clip(group.summary, 120))}" if group.summary else ""
    acked = f" · :eyes: {_user(group.acked_by)}" if group.acked_by else ""
    return f":fire: *{title}*{severity}{summary} · {group.firing} firing since {_date(group.since)}{acked}"


def approval_line(approval: HomeApproval) -> str:
    title = f"#{approval.id}"
    title = f"<{approval.link}|{title}>" if approval.link else title
    if approval.review_due is not None:
        return (
            f":mag: *{title}* {escape(approval.summary)} · `{escape(approval.action)}` · ran under break glass, "
            f"needs a review by {_date(approval.review_due)}"
        )
    return (
        f":warning: *{title}* {escape(approval.summary)} · `{escape(approval.action)}` · requested by "
        f"{_user(approval.requester)} · expires {_date(approval.expires_at)}"
    )


def command_line(command: HomeCommand) -> str:
    typed = f"/erpgo {command.verb}" + (f" {command.text}" if command.text else "")
    where = f" in <#{command.channel}>" if command.channel[:1] in "CG" else ""
    return f"`{escape(clip(typed, 150).replace('`', ''))}`{where} · {_date(command.at)}"


def home_view(
    groups: list[HomeGroup],
    groups_total: int,
    approvals: list[HomeApproval],
    commands: list[HomeCommand],
    notes: list[str] | None = None,
) -> dict:
    """The App Home view (views.publish) for one person."""
    firing = f"{groups_total} alert group{'s' if groups_total != 1 else ''} firing"
    blocks: list[Block] = [HeaderBlock(text="ERPGo on-call")]
    blocks.append(section(f"*{firing}*"))
    blocks += _lines([group_line(g) for g in groups[:MAX_LISTED]], ":white_check_mark: No alert is firing.")
    if groups_total > len(groups[:MAX_LISTED]):
        blocks.append(context(f"… and {groups_total - len(groups[:MAX_LISTED])} more: `/erpgo alerts`"))
    blocks.append(DividerBlock())
    blocks.append(section("*Approvals you may decide*"))
    blocks += _lines([approval_line(a) for a in approvals[:MAX_LISTED]], "_Nothing waits for you._")
    blocks.append(DividerBlock())
    blocks.append(section("*Your recent commands*"))
    blocks += _lines([command_line(c) for c in commands[:MAX_LISTED]], "_None yet: try `/erpgo health`._")
    for note in notes or []:
        blocks.append(context(note))
    blocks.append(context(f"updated {_date(datetime.now(UTC))} · opens again with the latest"))
    return {"type": "home", "blocks": [b.to_dict() for b in blocks[:MAX_VIEW_BLOCKS]]}
