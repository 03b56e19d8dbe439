"""Guide: "Application Issues › Application Won't Start" — the container as the engine sees it (`app`),
and the two container remediations every runbook proposes: `docker.restart` and `docker.start`."""
