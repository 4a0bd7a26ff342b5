"""Release bundles as `doorstep release build` lays them out (releases/bundle.py: one uncompressed
tar of manifest.json and wheels/), for the bridge's tests: the bridge reads the manifest and never
the signature, so the wheel here is filler bytes and the bundle unsigned."""

from __future__ import annotations

import os
import tarfile
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from releases.bundle import write_bundle


def bundle_bytes(version: str, *, wheel_bytes: int = 300_000) -> bytes:
    with tempfile.TemporaryDirectory() as directory:
        wheel = Path(directory) / f"doorstep-{version}-py3-none-any.whl"
        wheel.write_bytes(os.urandom(wheel_bytes))
        bundle = Path(directory) / "bundle.tar"
        write_bundle(bundle, [wheel], version=version, created_at=datetime(2026, 12, 7, tzinfo=UTC),
                     platforms=["host"], notes=f"release {version}", min_previous_version="0.0.1")
        return bundle.read_bytes()


def unversioned_bundle_bytes() -> bytes:
    """A tar whose manifest.json is no release's: it names no version."""
    with tempfile.TemporaryDirectory() as directory:
        manifest = Path(directory) / "manifest.json"
        manifest.write_text('{"notes": "no version"}')
        bundle = Path(directory) / "bundle.tar"
        with tarfile.open(bundle, "w") as tar:
            tar.add(manifest, "manifest.json")
        return bundle.read_bytes()
