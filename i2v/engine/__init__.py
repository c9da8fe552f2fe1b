"""The engine: each row submitted, waited for and stored, exactly once, under the provider's pace.

A run's settings (:mod:`~i2v.engine.spec`); how many jobs are at the provider at once
(:mod:`~i2v.engine.admission`) and when each is polled (:mod:`~i2v.engine.pacing`);
submit and wait (:mod:`~i2v.engine.jobs`); a finished video collected
(:mod:`~i2v.engine.collect`): downloaded into the destination
(:mod:`~i2v.engine.download`) under a name no other work has
(:mod:`~i2v.engine.output_names`); the journal and the records that make a run
resumable (:mod:`~i2v.engine.journal`, :mod:`~i2v.engine.records`); what stops a run
(:mod:`~i2v.engine.stop_rules`); what is retried (:mod:`~i2v.engine.retry`); the counts
shown as it goes (:mod:`~i2v.engine.progress`); and :mod:`~i2v.engine.runner`, which
runs every row of a run as a coroutine. It may import every stage below it (api,
inputs, storage, media, report) but never the manifest, the CLI or Prefect.
"""
