"""Guide: "Emergency Procedures" — Complete System Outage (assess, emergency restart) and Data
Corruption (backups, a restore that never drops anything)."""
