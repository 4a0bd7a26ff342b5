"""Downloading a bundle over a weak link: resumed where it stopped (an HTTP Range request, RFC
9110 §14), into a `.part` file, and accepted only at the size and SHA-256 the command gave."""

from __future__ import annotations

import hashlib
import ssl
import time
from pathlib import Path
from typing import Final

import httpx

# A stalled read gives up after this; the next attempt resumes from the bytes on disk, after a
# pause that grows by this much each time.
READ_TIMEOUT_S: Final = 60.0
RETRY_S: Final = 5.0
_CHUNK: Final = 256 * 1024


class DownloadError(Exception):
    """The bundle could not be fetched whole, or is not the file the command named."""


def download(url: str, dest: Path, *, size: int, sha256: str, attempts: int = 5, ca: Path | None = None) -> Path:
    """`dest` holding the bundle at `url`, of `size` bytes hashing to `sha256`. Bytes already in
    `dest`.part (an earlier, interrupted download) are kept and the rest asked for. `ca`: the
    bridge's private CA (the agent's bridge_ca), trusted instead of the system's CAs."""
    partial = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():  # downloaded before a restart (an interrupted switch): checked again, not fetched
        dest.replace(partial)
    last_error: Exception | None = None
    for attempt in range(attempts):
        time.sleep(RETRY_S * attempt)
        try:
            _fetch_rest(url, partial, size, ca)
            break
        except httpx.HTTPError as error:
            if (untrusted := _certificate_refused(error)) is not None:
                # Not a weak link: every attempt would be refused the same way.
                raise DownloadError(
                    f"{url}: the bridge's HTTPS certificate is not trusted by this kiosk ({untrusted.verify_message}); "
                    + ("bridge_ca does not hold the CA that signed it" if ca is not None
                       else "if the bridge uses a private CA, set bridge_ca (doorstep enrol --bridge-ca)")) from None
            last_error = error
    else:
        raise DownloadError(f"{url}: {last_error}")
    with partial.open("rb") as file:
        digest = hashlib.file_digest(file, "sha256").hexdigest()
    if digest != sha256:
        partial.unlink()  # the whole file is wrong: a resume would keep the wrong bytes
        raise DownloadError(f"{url}: SHA-256 {digest}, the command says {sha256}")
    partial.replace(dest)
    return dest


def _certificate_refused(error: BaseException) -> ssl.SSLCertVerificationError | None:
    """The TLS verification failure behind an httpx error (httpx and httpcore each wrap it), if any."""
    seen: BaseException | None = error
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _fetch_rest(url: str, partial: Path, size: int, ca: Path | None) -> None:
    have = partial.stat().st_size if partial.exists() else 0
    if have > size:
        partial.unlink()
        have = 0
    if have == size:
        return
    headers = {"Range": f"bytes={have}-"} if have else {}
    timeout = httpx.Timeout(10.0, read=READ_TIMEOUT_S)
    verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=ca) if ca is not None else True
    with httpx.stream("GET", url, headers=headers, timeout=timeout, follow_redirects=True, verify=verify) as response:
        if response.status_code == 200:
            have = 0  # the server sent the whole file (it ignored the range, or there was none)
        elif response.status_code != 206:
            if response.is_server_error:
                response.raise_for_status()  # the bridge's trouble: tried again
            raise DownloadError(f"{url}: HTTP {response.status_code}")  # ours (no such release): not
        with partial.open("r+b" if have else "wb") as file:
            file.seek(have)
            file.truncate()
            for chunk in response.iter_bytes(_CHUNK):
                file.write(chunk)
                if file.tell() > size:
                    raise DownloadError(f"{url}: longer than the {size} bytes the command says")
            file.flush()
    if partial.stat().st_size != size:
        raise httpx.ReadError(f"{partial.stat().st_size} of {size} bytes")
