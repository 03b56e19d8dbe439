"""`python -m demo`: try the bot in a terminal against local, throwaway ERPGo services."""

import sys

from demo.launch import main

sys.exit(main())
