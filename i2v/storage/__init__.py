"""Storage: where outputs go, a local folder or an S3 prefix, written atomically.

The :class:`~i2v.storage.destination.Destination` interface, its folder and S3
implementations (:mod:`~i2v.storage.local`, :mod:`~i2v.storage.s3`), opening one from
its URI (:func:`~i2v.storage.from_uri.open_destination`), the S3 client built from the
usual AWS settings (:mod:`~i2v.storage.s3_client`) and the inbox's claims on files
(:mod:`~i2v.storage.inbox_claims`). It may import :mod:`i2v.errors` only.
"""
