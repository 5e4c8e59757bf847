"""Verdicts on the records: budgets, recommendations and the baseline gate.

It may import ``client`` (wire facts, tier and timeout settings), ``observe`` (the records),
``errors`` and ``stats``; never ``report`` or ``plugin``.
"""
