"""Benchmarks: scripts with ``--help`` that print a table and write JSON (see ``prunability.py``)."""
