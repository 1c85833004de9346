"""The console: a server-rendered web UI over the same services as the API and the CLI.

``kirana serve`` mounts it at ``/console`` (docs/console.md). Pages call the services the
API routes call; nothing here talks to a store the services do not already own.
"""
