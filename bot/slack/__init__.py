"""What reaches Slack: the Web API client, the durable outbox (the one delivery path for
everything the bot posts), Block Kit rendering and Slack's limits."""
