"""The bot's own database (BOT_DATABASE_URL): the connection pool and versioned migrations."""
