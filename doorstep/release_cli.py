"""`doorstep release …`: cut a release bundle, sign it with the release key, check one
(docs/updates.md). Run on a release machine, never on the bridge: the bridge stores and serves
bundles and never needs the key."""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer

release_app = typer.Typer(help="Software releases for the kiosks: key, build, sign, verify.", no_args_is_help=True)

# The checkout this command runs from (doorstep/ is one of its top-level packages).
_SOURCE = Path(__file__).resolve().parents[1]


def _fail(message: str) -> typer.Exit:
    typer.echo(message, err=True)
    return typer.Exit(code=2)


@release_app.command("keygen")
def keygen(
    output: Annotated[Path, typer.Option("--output", help="the private key file to write (mode 0600); keep it offline")],
) -> None:
    """Make a release key; prints the public key that kiosks trust (release_public_keys)."""
    from releases.keys import keygen as make_key
    from releases.keys import public_key_text

    try:
        public = make_key(output)
    except FileExistsError:
        raise _fail(f"{output} exists: a release key is never replaced by accident") from None
    typer.echo(public_key_text(public))


@release_app.command("build")
def build(
    output: Annotated[Path, typer.Option("--output", help="the directory the bundle is written to")],
    version: Annotated[str | None, typer.Option("--version", help="the release's version (default: pyproject's)")] = None,
    notes: Annotated[str, typer.Option("--notes", help="release notes, shown to technicians")] = "",
    min_previous_version: Annotated[str | None, typer.Option(
        "--min-previous-version", help="kiosks running an older version refuse this release")] = None,
    platform: Annotated[list[str] | None, typer.Option(
        "--platform", help="host (this machine) or aarch64 (Raspberry Pi OS bookworm, Python 3.11); repeatable")] = None,
    source: Annotated[Path, typer.Option("--source", help="the Doorstep checkout to build from")] = _SOURCE,
) -> None:
    """Build an unsigned bundle: Doorstep's wheel and its dependencies' wheels for each platform.
    Prints the bundle's path; then `doorstep release sign` it."""
    from importlib.metadata import version as installed_version

    from releases.build import PLATFORMS, BuildError, dependency_wheels, doorstep_wheel
    from releases.bundle import write_bundle

    platforms = platform or ["host"]
    if unknown := [p for p in platforms if p not in PLATFORMS]:
        raise _fail(f"--platform {', '.join(unknown)}: one of {', '.join(PLATFORMS)}")
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="doorstep-wheels-") as tmp:
        try:
            wheel = doorstep_wheel(source, Path(tmp) / "own", version)
            wheels = dependency_wheels(wheel, Path(tmp) / "all", platforms)
        except BuildError as error:
            raise _fail(str(error)) from None
        release_version = version or installed_version("doorstep")
        bundle = output / f"doorstep-{release_version}.bundle"
        write_bundle(bundle, wheels, version=release_version, created_at=datetime.now(UTC), platforms=platforms,
                     notes=notes, min_previous_version=min_previous_version)
    typer.echo(str(bundle))


@release_app.command("sign")
def sign(
    bundle: Annotated[Path, typer.Argument(help="a bundle from `doorstep release build`")],
    key: Annotated[Path, typer.Option("--key", help="the private key file from `doorstep release keygen`")],
) -> None:
    """Sign the bundle's manifest (Ed25519); prints the signer's public key."""
    from releases.bundle import sign as sign_bundle
    from releases.errors import ReleaseError

    try:
        typer.echo(sign_bundle(bundle, key))
    except (ReleaseError, ValueError, OSError) as error:
        raise _fail(str(error)) from None


@release_app.command("verify")
def verify(
    bundle: Annotated[Path, typer.Argument(help="the bundle to check, as a kiosk would")],
    public_key: Annotated[list[str], typer.Option("--public-key", help="a trusted release public key; repeatable")],
) -> None:
    """Check the signature and every file as a kiosk does before it installs; exit 1 and the
    reason if refused."""
    from releases.bundle import verify as verify_bundle
    from releases.errors import ReleaseError

    try:
        manifest = verify_bundle(bundle, public_key)
    except ReleaseError as error:
        typer.echo(str(error), err=True)
        raise typer.Exit(code=1) from None
    typer.echo(f"{bundle}: Doorstep {manifest.version}, {len(manifest.files)} wheels, "
               f"platforms {', '.join(manifest.platforms)}: signature and every file are right")
