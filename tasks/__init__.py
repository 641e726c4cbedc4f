"""Process entry points: `python -m tasks.worker` runs the actors, `python -m tasks.scheduler` the periodic jobs."""
