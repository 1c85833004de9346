"""Entry point: ``kirana --help``."""

from __future__ import annotations

import typer

from kirana.cli import admin, demo, models, privacy, profile, segments, serve, sql, stats

app = typer.Typer(
    name="kirana",
    help="Kirana: an open-source personalisation platform that runs on a laptop.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.command("serve")(serve.serve)
app.command("sql")(sql.sql)
app.command("demo")(demo.demo)
app.command("status")(admin.status)
app.command("profile")(profile.profile)
app.command("stats")(stats.stats)
app.add_typer(admin.sources_app, name="sources")
app.add_typer(admin.tokens_app, name="tokens")
app.add_typer(admin.quarantine_app, name="quarantine")
app.add_typer(privacy.privacy_app, name="privacy")
app.add_typer(models.models_app, name="models")
app.add_typer(segments.traits_app, name="traits")
app.add_typer(segments.audiences_app, name="audiences")
app.add_typer(segments.segments_app, name="segments")

if __name__ == "__main__":
    app()
