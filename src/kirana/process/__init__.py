"""Running the consumers in a worker process beside the HTTP API (``kirana serve``)."""
