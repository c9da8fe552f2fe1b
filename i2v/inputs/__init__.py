"""Inputs: from a CSV, JSON Lines or Parquet file (a path or S3) to validated rows with stable keys.

Where an input is read from (:mod:`~i2v.inputs.sources`), its records and shards
(:mod:`~i2v.inputs.csv_reader`, :mod:`~i2v.inputs.jsonl_parquet`), each row checked and
keyed (:mod:`~i2v.inputs.validation`; its image cells by :mod:`~i2v.inputs.image_cells`,
its parameters by :mod:`~i2v.inputs.param_values`), safe output names
(:mod:`~i2v.inputs.safe_names`), what an input would do before it is paid for: the rows
that would get no video of their own (:mod:`~i2v.inputs.input_problems`, its images
asked and opened by :mod:`~i2v.inputs.image_checks`) and what its jobs would cost
(:mod:`~i2v.inputs.cost_estimate`), and rows rebuilt from a manifest for a re-run
(:mod:`~i2v.inputs.from_manifest`). It may import :mod:`i2v.api` (the models a row may
name, prices), :mod:`i2v.storage` (a manifest's destination), errors and limits.
"""
