"""Exports: selections written as CSV or Parquet, encrypted, downloadable once, rate-limited.

:mod:`~strongroom.exports.services` runs an export (check, produce, encrypt,
record) and purges export files; :mod:`~strongroom.exports.velocity` holds the
rolling-window limits and their ledger; :mod:`~strongroom.exports.download`
hands out an export's bytes once, to the user who made it.
"""
