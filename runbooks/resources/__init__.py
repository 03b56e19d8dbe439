"""Guide: "Memory Leaks", "Memory Issues" and "High CPU Usage" — containers' memory and CPU as the
Docker engine samples them, and the Go runtime as the API's `/metrics` exports it."""
