"""The pinned demo world of the screenshots and snapshot tests: a working directory with runs
(world.py), and pinned MLflow, registry and serving sources for their tabs (pinned_*.py)."""
