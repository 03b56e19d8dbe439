"""Running the bot with no Slack account: a local Slack that speaks Slack's real protocol, the
interactive shell in front of it, and the terminal rendering of Block Kit."""
