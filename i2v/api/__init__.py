"""The AI/ML API edge: the HTTP client, its settings, which download URLs are followed, the models, prices.

Everything the pipeline knows about the vendor lives here: how to create and fetch a
generation (:mod:`i2v.api.client`), where the key and base URL come from
(:mod:`i2v.api.settings`), which video URLs may be downloaded and how far
(:mod:`i2v.api.downloads`), which models exist and what they accept
(:mod:`i2v.api.models`) and what a video costs (:mod:`i2v.api.prices`). It may import
:mod:`i2v.errors` and :mod:`i2v.limits` only: never the engine, storage, manifest or report.
"""
