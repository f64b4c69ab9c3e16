"""``aureus keys``: create, list, describe, rotate, import and export public keys.

Wrapped import: ``keys import-params`` (on the machine that talks to the
provider), ``keys wrap-for-import`` (on the machine that holds the key
material; no configuration needed) and ``keys import --wrapped``.

Also ``keys keystore-info`` and ``keys passphrase`` for providers that keep a
keystore of their own (the local provider): they call the provider's
``keystore_info()`` / ``change_passphrase()`` and refuse others clearly.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import click

from ..errors import CredentialError, UnsupportedOperation
from ..interfaces import KeyMaterial
from ..keys import KeyMetadata
from ..sensitive import Secret
from ..wrapped_import import WRAPPING_ALGORITHMS, wrap_for_import
from .app import KEY_TYPES, AureusGroup, main, pairs, stack_of
from .atomic import atomic_output


@main.group("keys", cls=AureusGroup)
def keys_group() -> None:
    """Create, list, describe, rotate and import keys."""


def _describe_lines(metadata: KeyMetadata) -> list[str]:
    lines = [
        f"uri:             {metadata.uri}",
        f"type:            {metadata.key_type.value} ({metadata.purpose.value})",
        f"state:           {metadata.state.value}",
        f"created:         {metadata.created_at.isoformat()}",
        f"current version: {metadata.current_version}",
    ]
    if metadata.min_decryption_version is not None:  # rotation
        lines.append(f"min decryption:  {metadata.min_decryption_version}")
    if metadata.description:
        lines.append(f"description:     {metadata.description}")
    for name, value in metadata.labels:
        lines.append(f"label:           {name}={value}")
    for name, value in metadata.extra:
        lines.append(f"{name + ':':<17}{value}")
    lines.append("versions:")
    for version in metadata.versions:
        marker = "*" if version.version == metadata.current_version else " "
        usage = ""  # rotation: usage counters, where the provider counts
        if version.messages is not None:
            usage = f"  {version.messages} messages, {version.bytes or 0} bytes"
        lines.append(
            f"  {marker} {version.version:<6} {version.state.value:<10} "
            f"{version.created_at.isoformat()}{usage}"
        )
    return lines


@keys_group.command("create")
@click.argument("name")
@click.option("--type", "key_type", type=click.Choice(KEY_TYPES), required=True, help="Key type.")
@click.option("--description", default="", help="Free-text description.")
@click.option("--label", "labels", multiple=True, metavar="K=V", help="A label (repeatable).")
@click.option(
    "--if-not-exists",
    is_flag=True,
    help="Succeed (printing the URI) when a key of that name already exists.",
)
@click.pass_context
def keys_create(
    ctx: click.Context,
    name: str,
    key_type: str,
    description: str,
    labels: tuple[str, ...],
    if_not_exists: bool,
) -> None:
    """Create a key and print its URI (NAME or scheme://NAME)."""
    metadata = stack_of(ctx).create_key(
        name,
        key_type,
        description=description,
        labels=pairs(labels, "--label"),
        if_not_exists=if_not_exists,
    )
    click.echo(metadata.uri)


@keys_group.command("list")
@click.option("--provider", default=None, help="Only this provider scheme.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def keys_list(ctx: click.Context, provider: str | None, as_json: bool) -> None:
    """List keys."""
    keys = stack_of(ctx).list_keys(provider)
    if as_json:
        click.echo(json.dumps([k.to_dict() for k in keys], indent=2))
        return
    for metadata in keys:
        click.echo(
            f"{metadata.uri}  {metadata.key_type.value}  v{metadata.current_version}  "
            f"{metadata.state.value}  {metadata.created_at.date().isoformat()}"
        )


@keys_group.command("describe")
@click.argument("uri")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def keys_describe(ctx: click.Context, uri: str, as_json: bool) -> None:
    """Show a key's metadata and versions."""
    metadata = stack_of(ctx).describe_key(uri)
    if as_json:
        click.echo(json.dumps(metadata.to_dict(), indent=2))
    else:
        click.echo("\n".join(_describe_lines(metadata)))


@keys_group.command("rotate")
@click.argument("uri")
@click.pass_context
def keys_rotate(ctx: click.Context, uri: str) -> None:
    """Add a new current version; older versions keep working for unwrap and verify."""
    metadata = stack_of(ctx).rotate_key(uri)
    click.echo(f"{metadata.uri} is now at version {metadata.current_version}")


@keys_group.command("replicate")
@click.argument("uri")
@click.option("--region", required=True, help="The region to create the replica in.")
@click.option("--json", "as_json", is_flag=True, help="Print the replica's metadata as JSON.")
@click.pass_context
def keys_replicate(ctx: click.Context, uri: str, region: str, as_json: bool) -> None:
    """Replicate a multi-region key into another region."""
    metadata = stack_of(ctx).replicate_key(uri, region)
    if as_json:
        click.echo(json.dumps(metadata.to_dict(), indent=2))
    else:
        click.echo(f"{metadata.uri} replicates {uri} in {region}")


@keys_group.command("import")
@click.argument("name")
@click.option("--type", "key_type", type=click.Choice(KEY_TYPES), required=True)
@click.option(
    "--raw-key-file",
    type=click.Path(dir_okay=False, exists=True),
    help="File holding raw AES key bytes (16, 24 or 32 for aes-128, aes-192, aes-256).",
)
@click.option(
    "--pem-file",
    type=click.Path(dir_okay=False, exists=True),
    help="File holding an unencrypted PEM private key (ed25519, ecdsa-p256, rsa-*), "
    "or an RSA public key for a raw RSA key that only encrypts.",
)
@click.option(
    "--wrapped",
    "wrapped_file",
    type=click.Path(dir_okay=False, exists=True),
    help="File holding key material wrapped for an import token "
    "(`aureus keys wrap-for-import`, or RSA-OAEP + AES-KWP by any tool).",
)
@click.option(
    "--import-token",
    default=None,
    help="With --wrapped: the import token the material was wrapped for.",
)
@click.option(
    "--new-version", is_flag=True, help="Import as a new current version of an existing key."
)
@click.option(
    "--namespace",
    default=None,
    help="Raw keyring key: the key namespace (provider ID) the other party's raw keyring uses.",
)
@click.option(
    "--key-name",
    default=None,
    help="Raw keyring key: the key name the other party's raw keyring uses.",
)
@click.option(
    "--padding",
    type=click.Choice(["pkcs1", "oaep-sha1", "oaep-sha256", "oaep-sha384", "oaep-sha512"]),
    default=None,
    help="Raw RSA key: its padding (OAEP uses MGF1 with the same hash).",
)
@click.pass_context
def keys_import(
    ctx: click.Context,
    name: str,
    key_type: str,
    raw_key_file: str | None,
    pem_file: str | None,
    wrapped_file: str | None,
    import_token: str | None,
    new_version: bool,
    namespace: str | None,
    key_name: str | None,
    padding: str | None,
) -> None:
    """Import key material and print the key's URI.

    With --wrapped and --import-token the material arrives wrapped for the
    import parameters of `aureus keys import-params`, and is unwrapped inside
    the provider.

    With --namespace and --key-name (and --padding for RSA) the key is a raw
    keyring key: it reads and writes messages of the AWS Encryption SDK's raw
    AES or raw RSA keyring configured with that key namespace and key name.
    """
    if sum(f is not None for f in (raw_key_file, pem_file, wrapped_file)) != 1:
        raise click.UsageError("give exactly one of --raw-key-file, --pem-file or --wrapped")
    if (wrapped_file is None) != (import_token is None):
        raise click.UsageError(
            "--wrapped needs --import-token (the token the material was wrapped for), "
            "and --import-token needs --wrapped"
        )
    raw = Path(raw_key_file).read_bytes() if raw_key_file else None
    pem = Path(pem_file).read_bytes() if pem_file else None
    wrapped = Path(wrapped_file).read_bytes() if wrapped_file else None
    metadata = stack_of(ctx).import_key(
        name,
        key_type,
        raw=raw,
        pem=pem,
        wrapped=wrapped,
        import_token=import_token,
        new_version=new_version,
        namespace=namespace,
        key_name=key_name,
        padding=padding,
    )
    click.echo(metadata.uri)


@keys_group.command("import-params")
@click.argument("name")
@click.option("--type", "key_type", type=click.Choice(KEY_TYPES), required=True)
@click.option(
    "--new-version", is_flag=True, help="The import will add a version to an existing key."
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    required=True,
    help="Write the wrapping public key (PEM) here.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the parameters as JSON.")
@click.pass_context
def keys_import_params(
    ctx: click.Context, name: str, key_type: str, new_version: bool, output: str, as_json: bool
) -> None:
    """Start a wrapped import: write the target's wrapping key, print token and fingerprint.

    The provider makes a key pair whose private half never leaves it, and a
    token that imports once, into NAME only, before it expires.  Check the
    printed fingerprint through a second channel before wrapping for it.
    """
    parameters = stack_of(ctx).import_parameters(name, key_type, new_version=new_version)
    with atomic_output(output) as handle:
        handle.write(parameters.wrapping_public_key)
    if as_json:
        click.echo(json.dumps(parameters.to_dict(), indent=2))
        return
    material = "--raw-key-file KEY" if key_type.startswith("aes-") else "--pem-file KEY.pem"
    flag = " --new-version" if new_version else ""
    click.echo(
        "\n".join(
            [
                f"key:           {parameters.key_uri} ({parameters.key_type.value})",
                f"import token:  {parameters.import_token}",
                f"algorithm:     {parameters.wrapping_algorithm}",
                f"wrapping key:  {output}",
                f"fingerprint:   {parameters.fingerprint}",
                f"expires:       {parameters.expires_at.isoformat()}",
                "",
                "Confirm the fingerprint through a second channel (it is the SHA-256 of the",
                "key's DER: `openssl pkey -pubin -in FILE -outform DER | sha256sum`), then on",
                "the machine that holds the key material:",
                f"  aureus keys wrap-for-import --type {key_type} --wrapping-key {output} \\",
                f"    --algorithm {parameters.wrapping_algorithm} \\",
                f"    --fingerprint {parameters.fingerprint} {material} -o wrapped.bin",
                "and here:",
                f"  aureus keys import {parameters.key_uri} --type {key_type}{flag} "
                f"--wrapped wrapped.bin --import-token {parameters.import_token}",
            ]
        )
    )


@keys_group.command("wrap-for-import")
@click.option("--type", "key_type", type=click.Choice(KEY_TYPES), required=True)
@click.option(
    "--wrapping-key",
    type=click.Path(dir_okay=False, exists=True),
    required=True,
    help="The PEM public key `aureus keys import-params` wrote.",
)
@click.option(
    "--fingerprint",
    required=True,
    help="The wrapping key's fingerprint, as confirmed through a second channel.",
)
@click.option(
    "--algorithm",
    type=click.Choice(list(WRAPPING_ALGORITHMS)),
    required=True,
    help="The wrapping algorithm of the import parameters.",
)
@click.option(
    "--raw-key-file",
    type=click.Path(dir_okay=False, exists=True),
    help="File holding the raw AES key bytes.",
)
@click.option(
    "--pem-file",
    type=click.Path(dir_okay=False, exists=True),
    help="File holding an unencrypted PEM private key.",
)
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False),
    required=True,
    help="Write the wrapped material here.",
)
def keys_wrap_for_import(
    key_type: str,
    wrapping_key: str,
    fingerprint: str,
    algorithm: str,
    raw_key_file: str | None,
    pem_file: str | None,
    output: str,
) -> None:
    """Wrap key material for a provider's import token (needs no configuration or network).

    Refuses a wrapping key whose fingerprint is not the one given, so the
    file cannot be swapped for another key on its way here.
    """
    if (raw_key_file is None) == (pem_file is None):
        raise click.UsageError("give exactly one of --raw-key-file or --pem-file")
    source = Path(raw_key_file or pem_file or "")
    material = KeyMaterial(
        format="raw" if raw_key_file else "pem", data=Secret(source.read_bytes())
    )
    wrapped = wrap_for_import(
        key_type,
        material,
        wrapping_public_key=Path(wrapping_key).read_bytes(),
        algorithm=algorithm,
        expected_fingerprint=fingerprint,
    )
    with atomic_output(output) as handle:
        handle.write(wrapped)
    click.echo(f"wrote {len(wrapped)} bytes of wrapped key material to {output}")


@keys_group.command("public-key")
@click.argument("uri")
@click.pass_context
def keys_public_key(ctx: click.Context, uri: str) -> None:
    """Print the PEM public key of a signing key (pin a version with ?version=N)."""
    click.echo(stack_of(ctx).public_key(uri).decode("ascii"), nl=False)


def _keystore_method(ctx: click.Context, scheme: str, method: str, what: str) -> Any:
    provider = stack_of(ctx).provider(scheme)
    call = getattr(provider, method, None)
    if not callable(call):
        raise UnsupportedOperation(scheme, what, "only the local provider keeps a keystore")
    return call


def _info_lines(info: dict[str, Any]) -> list[str]:
    lines = [
        f"keystore:     {info['directory']}",
        f"keystore_id:  {info['keystore_id']}",
        f"fingerprint:  {info['fingerprint']}",
        f"generation:   {info['generation']}",
        f"unlock:       {info['unlock']}"
        + (f" (scrypt N=2**{info['scrypt_log_n']})" if info["scrypt_log_n"] else ""),
        "",
        "To refuse another or an older keystore, pin it in the configuration:",
        "  [providers.local]",
        f'  keystore_id = "{info["keystore_id"]}"',
        f'  keystore_fingerprint = "{info["fingerprint"]}"',
        f"  min_generation = {info['generation']}",
    ]
    return lines


@keys_group.command("keystore-info")
@click.option("--provider", "scheme", default="local", show_default=True, help="Provider scheme.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def keys_keystore_info(ctx: click.Context, scheme: str, as_json: bool) -> None:
    """Show the keystore's ID, fingerprint and generation, to pin in the configuration."""
    info = _keystore_method(ctx, scheme, "keystore_info", "keystore information")().to_dict()
    if as_json:
        click.echo(json.dumps(info, indent=2))
    else:
        click.echo("\n".join(_info_lines(info)))


@keys_group.command("passphrase")
@click.option("--provider", "scheme", default="local", show_default=True, help="Provider scheme.")
@click.option(
    "--new-passphrase-env",
    "variable",
    default=None,
    metavar="VAR",
    help="Read the new passphrase from this environment variable (default: prompt twice).",
)
@click.pass_context
def keys_passphrase(ctx: click.Context, scheme: str, variable: str | None) -> None:
    """Re-seal a passphrase keystore under a new passphrase (atomically).

    The current passphrase comes from the usual place (the provider's
    credentials or AUREUS_KEYSTORE_PASSPHRASE).  Giving the same passphrase
    again re-seals with a fresh salt at the current scrypt cost.
    """
    stack = stack_of(ctx)
    _keystore_method(ctx, scheme, "change_passphrase", "changing the passphrase")
    if variable is not None:
        new = os.environ.get(variable)
        if not new:
            raise CredentialError(f"environment variable {variable} is unset or empty")
    else:
        new = click.prompt("New passphrase", hide_input=True, confirmation_prompt=True, err=True)
    info = stack.change_keystore_passphrase(Secret(new), provider=scheme).to_dict()
    click.echo(
        f"re-sealed keystore {info['directory']} (generation {info['generation']}); "
        f"its fingerprint is now {info['fingerprint']}: update keystore_fingerprint "
        "wherever it is pinned"
    )
