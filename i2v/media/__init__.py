"""Media: is a file a real video, and is it the video its row asked for.

Decoding a file and taking a thumbnail (:mod:`~i2v.media.probe`, PyAV) and comparing a
stored video with its row's duration, aspect ratio and resolution
(:mod:`~i2v.media.mismatch`). It may import :mod:`i2v.errors` only.
"""
