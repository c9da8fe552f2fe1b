"""Reports: what a run did, for people.

Totals, the Markdown summary and console lines (:mod:`~i2v.report.summary`) and the
self-contained ``report.html`` page (:mod:`~i2v.report.page`, with its stylesheet and
script as package files ``page.css`` and ``page.js``). It may import
:mod:`i2v.outcomes` and storage.
"""
