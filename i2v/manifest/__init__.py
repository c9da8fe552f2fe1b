"""Manifests: one row per input row for each run, one row per piece of work for the destination.

A run's table (:mod:`~i2v.manifest.run_table`), the destination's merged table
(:mod:`~i2v.manifest.merged`, deciding which row wins with
:mod:`~i2v.manifest.merge_winners` and reading rows back with
:mod:`~i2v.manifest.parquet_rows`), the Hugging Face ``videofolder`` export
(:mod:`~i2v.manifest.videofolder`), the report pages of each run and of the destination
(:mod:`~i2v.manifest.reports`) and the local folder that takes a manifest its
destination refused (:mod:`~i2v.manifest.fallback`). It may import :mod:`i2v.outcomes`, the engine's
records, storage and report.
"""
