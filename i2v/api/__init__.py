"""The AI/ML API edge: the HTTP client, its settings, which download URLs are followed, the models, prices.

Everything the pipeline knows about the vendor lives here: how to create and fetch a
generation (:mod:`i2v.api.client`), where the key and base URL come from
(:mod:`i2v.api.settings`), what its error answers mean (:mod:`i2v.api.error_answers`),
which video URLs may be downloaded, how far, and the download itself
(:mod:`i2v.api.downloads`), which models exist and what they accept
(:mod:`i2v.api.models`, from the vendor's schemas in :mod:`i2v.api.catalogue`) and what a
video costs (:mod:`i2v.api.prices`). It may import :mod:`i2v.errors` and :mod:`i2v.limits`
only: never the engine, storage, manifest or report.
"""
