"""Benchmarks, each printing Pyrostore beside a baseline measured in the same run.

Run them in the environment ``make`` creates, with the repository on ``PYTHONPATH``: ``make bench`` runs every
one, ``make bench BENCHES=segment_codec`` some; their options are in each one's ``--help``.
"""
