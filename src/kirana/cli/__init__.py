"""The ``kirana`` command: thin front-ends over the services.

Heavy libraries (duckdb, deltalake, pyarrow, uvicorn) are imported inside
commands so that ``kirana --help`` answers instantly.
"""
