"""The HTTP API: thin routes over the services (see ``app.create_app``)."""
