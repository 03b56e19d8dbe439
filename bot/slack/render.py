"""Findings → Slack messages (Block Kit), within Slack's limits. Slack mrkdwn only lives here."""

from __future__ import annotations

from collections import Counter

from slack_sdk.models.blocks import (
    Block,
    ContextBlock,
    DividerBlock,
    HeaderBlock,
    MarkdownTextObject,
    SectionBlock,
)

from bot.core.findings import Finding, Status, worst
from bot.core.parse import is_slack_channel_id, is_slack_user_id
from bot.core.redact import redact

MAX_BLOCKS = 50
MAX_SECTION = 3000
MAX_EVIDENCE_LINES = 15
MAX_FILE_BYTES = 1024 * 1024  # what one report's evidence file may hold
Message = dict  # {"text": fallback, "blocks": [...]} as chat.postMessage takes it


def escape(text: str) -> str:
    """Slack's three control characters; user text never becomes a mention or a link."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def mention(user_id: str | None, missing: str = "nobody") -> str:
    """`<@U…>` for a Slack user id, the escaped text for anything else (a forged id never becomes a mention)."""
    if not user_id:
        return missing
    return f"<@{user_id}>" if is_slack_user_id(user_id) else escape(str(user_id))


def channel_link(channel_id: str | None, missing: str = "?") -> str:
    """`<#C…>` for a Slack channel id, the escaped text for anything else."""
    if not channel_id:
        return missing
    return f"<#{channel_id}>" if is_slack_channel_id(channel_id) else escape(str(channel_id))


def clip(text: str, limit: int) -> str:
    text = redact(text)  # before the cut, which could leave a secret unrecognisable
    return text if len(text) <= limit else text[: limit - 20].rstrip() + "\n… (truncated)"


def section(text: str) -> SectionBlock:
    return SectionBlock(text=MarkdownTextObject(text=clip(text, MAX_SECTION)))


def context(text: str) -> ContextBlock:
    return ContextBlock(elements=[MarkdownTextObject(text=clip(text, MAX_SECTION))])


def message(text: str, blocks: list[Block] | None = None) -> Message:
    """A message payload; over-long block lists keep their head and say what was left out."""
    blocks = list(blocks or [])
    if len(blocks) > MAX_BLOCKS:
        left_out = len(blocks) - (MAX_BLOCKS - 1)
        blocks = blocks[: MAX_BLOCKS - 1] + [context(f"… {left_out} more blocks not shown")]
    return {"text": clip(text, 3000), "blocks": [block.to_dict() for block in blocks]}


def text_message(text: str) -> Message:
    """One section, or several split at line ends when the text is longer than a section may be."""
    return message(text, [section(chunk) for chunk in chunks(text, MAX_SECTION)])


def chunks(text: str, limit: int) -> list[str]:
    found: list[str] = []
    current = ""
    for line in text.split("\n"):
        if current and len(current) + 1 + len(line) > limit:
            found.append(current)
            current = line
        else:
            current = f"{current}\n{line}" if current else line
    return [*found, current]


def summary_counts(findings: list[Finding]) -> str:
    counts = Counter(f.status for f in findings)
    order = [Status.CRIT, Status.ERROR, Status.WARN, Status.OK, Status.SKIPPED]
    return " · ".join(f"{counts[s]} {s.label.lower()}" for s in order if counts[s])


def finding_line(finding: Finding) -> str:
    return f"{finding.status.emoji} *{escape(finding.component)}* — {escape(finding.title)}"


def headline(title: str, findings: list[Finding], footer: str = "") -> Message:
    """ONE screen: the worst status, then one line per finding, worst first."""
    status = worst(f.status for f in findings)
    ordered = sorted(findings, key=lambda f: -f.status.rank)
    blocks: list[Block] = [HeaderBlock(text=clip(f"{title}: {status.label}", 150))]
    chunk = ""
    for line in map(finding_line, ordered):
        if len(chunk) + len(line) + 1 > MAX_SECTION:
            blocks.append(section(chunk))
            chunk = ""
        chunk += line + "\n"
    blocks.append(section(chunk or "_no findings_"))
    blocks.append(context(" · ".join(part for part in (summary_counts(findings), footer) if part)))
    fallback = escape(f"{title}: {status.label} — " + "; ".join(f"{f.component}: {f.status.label}" for f in ordered))
    return message(fallback, blocks)


def finding_detail(finding: Finding, attached: bool = False) -> str:
    """A finding with its details and the first lines of its evidence; `attached`: the rest of the
    evidence is in the report's file (evidence_file), shared in the same thread."""
    text = finding_line(finding)
    if finding.details:
        text += "\n" + "\n".join(escape(line) for line in finding.details)
    if finding.evidence:
        lines = finding.evidence[:MAX_EVIDENCE_LINES]
        more = len(finding.evidence) - len(lines)
        text += "\n```" + "\n".join(escape(line) for line in lines) + "```"
        if more and attached:
            text += f"\n_… {more} more lines in the attached file_ :paperclip:"
        elif more:
            text += f"\n_… {more} more lines_"
    return text


def long_evidence(findings: list[Finding]) -> list[Finding]:
    """The findings whose evidence is longer than a message shows."""
    return [f for f in findings if len(f.evidence) > MAX_EVIDENCE_LINES]


def evidence_file(title: str, findings: list[Finding]) -> dict | None:
    """One text file with the whole evidence of every finding a message clips (None when none is
    clipped): {"filename", "title", "content"}, as the outbox's upload rows carry it."""
    long = long_evidence(findings)
    if not long:
        return None
    parts = [f"{title}\n"]
    for finding in sorted(long, key=lambda f: -f.status.rank):
        parts.append(f"== [{finding.status.label}] {finding.component} — {finding.title}")
        parts.extend(finding.evidence)
        parts.append("")
    content = "\n".join(parts)
    if len(content.encode()) > MAX_FILE_BYTES:
        content = content.encode()[: MAX_FILE_BYTES - 40].decode(errors="ignore") + "\n… (truncated)\n"
    slug = "-".join("".join(c if c.isalnum() else " " for c in title.lower()).split())[:60] or "report"
    return {"filename": f"{slug}.txt", "title": f"{title} — full evidence", "content": content}


def evidence_upload(title: str, findings: list[Finding]) -> dict | None:
    """The outbox upload row's message for a report's long evidence (None when nothing was cut)."""
    file = evidence_file(title, findings)
    if file is None:
        return None
    lines = sum(len(f.evidence) for f in long_evidence(findings))
    return {"text": f":paperclip: Full evidence of {escape(title)} ({lines} lines)", "file": file}


def details(title: str, findings: list[Finding], attached: bool = False) -> Message:
    """The thread reply: every finding with its details, evidence, guide section and proposals
    (the proposals' Approve/Reject messages follow it, posted by the approval engine).
    `attached`: evidence cut short here is in evidence_file(), shared after it."""
    blocks: list[Block] = []
    for finding in sorted(findings, key=lambda f: -f.status.rank):
        blocks.append(section(finding_detail(finding, attached)))
        for proposal in finding.proposals:
            blocks.append(
                section(
                    f":wrench: *Proposed:* {escape(proposal.summary)}"
                    + (f"\n_{escape(proposal.reason)}_" if proposal.reason else "")
                )
            )
        if finding.section:
            blocks.append(context(f"Guide: {escape(finding.section)}"))
        blocks.append(DividerBlock())
    return message(f"{title} — details", blocks[:-1] if blocks else [section("_nothing to add_")])


def report_text(title: str, findings: list[Finding]) -> str:
    """The same report as plain text, for terminals (`erpgo-bot check`)."""
    status = worst(f.status for f in findings)
    lines = [f"{title}: {status.label}"]
    for finding in sorted(findings, key=lambda f: -f.status.rank):
        lines.append(f"[{finding.status.label:>8}] {finding.component} — {finding.title}")
        lines += [f"           {line}" for line in finding.details]
        lines += [f"           | {line}" for line in finding.evidence[:MAX_EVIDENCE_LINES]]
        lines += [f"           proposed: {p.summary}" for p in finding.proposals]
    lines.append(summary_counts(findings))
    return "\n".join(lines)
