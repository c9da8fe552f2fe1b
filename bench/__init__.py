"""Benchmarks that judge the engine: each prints figures (one JSON object last on stdout), never pass/fail."""
