"""``make soak``: the archiver, its readers and a replay for N minutes under object-store faults, archiver
SIGKILLs and broker restarts, then a report (see :mod:`e2e.soak.__main__`)."""
