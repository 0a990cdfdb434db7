"""`make bench`: LeadFlow's speed and capacity against a bare-Kafka floor.

Run from the repository root: ``uv run python -m bench`` (``--help`` for the knobs).
"""
