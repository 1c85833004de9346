"""Entry point: ``kirana --help``."""

from __future__ import annotations

import typer

from kirana.cli import admin, demo, models, privacy, profile, segments, serve, sql, stats
from kirana.cli.audit_log import audit_changes
from kirana.cli.content import content_app
from kirana.cli.destinations import destinations_app
from kirana.cli.experiments import experiments_app
from kirana.cli.jobs import jobs_app
from kirana.cli.replication import sources_app as _replication_commands  # noqa: F401
from kirana.cli.syncs import syncs_app
from kirana.cli.warehouse import warehouse_app

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
app.command("audit")(admin.audit)
app.command("profile")(profile.profile)
app.command("stats")(stats.stats)
app.add_typer(admin.sources_app, name="sources")
app.add_typer(admin.tokens_app, name="tokens")
app.add_typer(admin.quarantine_app, name="quarantine")
app.add_typer(privacy.privacy_app, name="privacy")
app.add_typer(models.models_app, name="models")
app.add_typer(jobs_app, name="jobs")
app.add_typer(segments.traits_app, name="traits")
app.add_typer(segments.audiences_app, name="audiences")
app.add_typer(segments.segments_app, name="segments")
app.add_typer(experiments_app, name="experiments")
app.add_typer(destinations_app, name="destinations")
app.add_typer(syncs_app, name="syncs")
app.add_typer(content_app, name="content")
app.add_typer(warehouse_app, name="warehouse")
audit_changes(app)  # every command that changes something is in the audit log

if __name__ == "__main__":
    app()
