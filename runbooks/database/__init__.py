"""Guide: "Database Issues" — one module per subsection."""
