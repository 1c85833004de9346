"""Analytics and machine learning on Kirana's data: recommenders and their offline evaluation.

Everything here is pure computation on in-memory arrays, so that the same code runs in tests,
in the benchmark script and, later, on tables read from the Delta lake.
"""
