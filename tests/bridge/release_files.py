"""Release bundles as `doorstep release build` lays them out (one uncompressed tar: manifest.json,
manifest.sig, wheels/), for the bridge's tests: the bridge reads only the manifest's version and
never the signature, so the wheel here is filler bytes and the signature a placeholder."""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from typing import Any


def bundle_bytes(version: str, *, wheel_bytes: int = 300_000, manifest: dict[str, Any] | None = None) -> bytes:
    wheel = os.urandom(wheel_bytes)
    name = f"wheels/doorstep-{version}-py3-none-any.whl"
    document = manifest if manifest is not None else {
        "version": version, "notes": f"release {version}", "min_previous_version": "0.0.1",
        "files": {name: hashlib.sha256(wheel).hexdigest()},
    }
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as bundle:
        for member, data in (("manifest.json", json.dumps(document).encode()), ("manifest.sig", b"0" * 64), (name, wheel)):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            bundle.addfile(info, io.BytesIO(data))
    return out.getvalue()
