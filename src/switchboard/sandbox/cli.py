"""``switchboard sandbox``: serve the simulators until Ctrl-C."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def sandbox(
    only: Annotated[
        str | None,
        typer.Option(help="Comma-separated subset of: hubspot,nango,acme,events,todo,pipedrive."),
    ] = None,
    host: Annotated[str, typer.Option(help="Address to bind.")] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            help="First port: hubspot P, nango P+1, acme P+2, events P+3, todo P+4, "
            "pipedrive P+5, receiver P+6. 0: any."
        ),
    ] = 8101,
    contacts: Annotated[int, typer.Option(min=0, help="HubSpot contacts to seed.")] = 100,
    seed: Annotated[int, typer.Option(help="Seed for generated data and random faults.")] = 0,
    latency_ms: Annotated[int, typer.Option(min=0, help="Added to every answer.")] = 0,
    error_rate: Annotated[
        float, typer.Option(min=0, max=1, help="Share of requests answered 500.")
    ] = 0.0,
    storm: Annotated[bool, typer.Option(help="Answer every request 429.")] = False,
    down: Annotated[
        str | None, typer.Option(help='"503" (answer 503) or "reset" (drop connections).')
    ] = None,
    fever_dir: Annotated[
        Path | None,
        typer.Option(help="Folder of sample feeds (default: the provider's samples, shipped)."),
    ] = None,
    webhook_url: Annotated[
        str | None, typer.Option(help="HubSpot webhook subscriber URL (e.g. the hub's).")
    ] = None,
    acme_webhook_url: Annotated[
        str | None, typer.Option(help="ACME webhook subscriber URL.")
    ] = None,
    todo_target: Annotated[
        str | None, typer.Option(help="Where the TODO app posts task webhooks.")
    ] = None,
    pipedrive_webhook_url: Annotated[
        str | None, typer.Option(help="Pipedrive webhook subscriber URL (HTTP Basic auth).")
    ] = None,
) -> None:
    """Serve faithful local simulators of every provider (prints `<name>: <base URL>`)."""
    # Imported here so that other commands do not pay for the simulators' imports.
    from switchboard.sandbox.faults import Faults
    from switchboard.sandbox.server import Sandbox

    try:
        faults = Faults.model_validate(
            {"latency_ms": latency_ms, "error_rate": error_rate, "storm": storm, "down": down}
        )
        box = Sandbox(
            only,
            host=host,
            port=port,
            contacts=contacts,
            seed=seed,
            faults=faults,
            fever_dir=fever_dir,
            hubspot_webhook_url=webhook_url,
            acme_webhook_url=acme_webhook_url,
            todo_target=todo_target,
            pipedrive_webhook_url=pipedrive_webhook_url,
        )
        urls = box.start()
    except (ValueError, RuntimeError, FileNotFoundError) as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise typer.Exit(2) from None
    for name, url in urls.items():
        typer.echo(f"{name}: {url}")
    typer.echo("simulators running (not real providers); Ctrl-C to stop", err=True)
    try:
        box.wait()
    except KeyboardInterrupt:
        pass
    finally:
        box.stop()
