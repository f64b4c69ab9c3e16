"""``aureus plugins``: what is installed, what it registers, and what is unavailable and why."""

from __future__ import annotations

import json

import click

from .app import main


@main.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def plugins_command(as_json: bool) -> None:
    """List plugins: what each registers, its version and status."""
    from ..plugins import get_host

    infos = get_host().plugins()
    if as_json:
        click.echo(json.dumps([info.to_dict() for info in infos], indent=2))
        return
    if not infos:
        click.echo("no plugins installed")
        return
    for info in infos:
        version = info.version or "-"
        registers = (
            "; ".join(
                f"{kind.replace('_', ' ')}: {', '.join(names)}"
                for kind, names in info.registers.items()
            )
            or "nothing"
        )
        click.echo(f"{info.name}  {version}  {info.status.value}  ({registers})")
        for kind, named in info.descriptions.items():
            for entry, description in named.items():
                click.echo(f"    {kind.replace('_', ' ').rstrip('s')} {entry}: {description}")
        if info.reason:
            click.echo(f"    reason: {info.reason}")
        if info.install_hint:
            click.echo(f"    fix: {info.install_hint}")
