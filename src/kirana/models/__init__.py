"""Analytics and machine learning on Kirana's data.

``recommenders`` (baselines, TIFU-KNN, EASE, ALS, associations) with their next-basket
``evaluation``, and ``buying_patterns`` (customer-base models). Everything here is pure
computation on in-memory arrays, so that the same code runs in tests, in the benchmark
scripts and, later, on tables read from the Delta lake.
"""
