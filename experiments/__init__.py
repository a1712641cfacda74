"""Experiment configs (TOML -> frozen dataclasses), the ``byai`` CLI and the benchmarks."""
