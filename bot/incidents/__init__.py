"""Incidents as the bot saw them: the commands people ran (commands.py), and the timeline of an alert
group or a report thread rebuilt from the bot's own records (timeline.py), written up as a
postmortem draft (postmortem.py). Nothing here knows Slack."""
