"""The tenant user's command-line client: everything through the HTTPS API, never around it.

``register`` adds the client commands to the ``strongroom`` command. The client
keeps a token in a credentials file (see :mod:`.config`) and speaks to the
server only through :class:`.http.Api`.
"""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add login/logout/whoami, dataset, count, cube, sql, preview, selection, export, quota."""
    from strongroom.cli.client import account, analysis, datasets, exports

    app.command("login")(account.login)
    app.command("logout")(account.logout)
    app.command("whoami")(account.whoami)
    app.add_typer(datasets.app, name="dataset")
    app.command("count")(analysis.count)
    app.command("cube")(analysis.cube)
    app.command("sql")(analysis.sql)
    app.command("preview")(analysis.preview)
    app.add_typer(analysis.selection_app, name="selection")
    exports.register(app)
