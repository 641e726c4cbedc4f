"""Dramatiq actors. `dramatiq tasks.worker` runs them; `python -m tasks.scheduler` times the periodic jobs."""
