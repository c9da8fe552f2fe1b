"""Reports: what a run did, for people.

Totals, the Markdown summary and console lines (:mod:`~i2v.report.summary`); the
self-contained ``report.html`` page, written out a row at a time by
:mod:`~i2v.report.page` from its header (:mod:`~i2v.report.page_header`), each row's card
values (:mod:`~i2v.report.page_cards`) and its stylesheet and script, package files
``page.css`` and ``page.js`` (:mod:`~i2v.report.page_assets`); the links a page may use
(:mod:`~i2v.report.links`); and a comparison's models side by side
(:mod:`~i2v.report.comparison`). It may import :mod:`i2v.api` (prices),
:mod:`i2v.outcomes` and storage.
"""
