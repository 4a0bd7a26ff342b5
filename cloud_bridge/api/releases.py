"""Release bundles: technicians upload, list and delete them; kiosks download them, resumably.

Who may download a bundle: anyone who can reach the bridge, with no token. A bundle is
Doorstep's own open-source wheels and their public dependencies, signed: it holds no secret and
no one's data, so reading it tells nothing. What makes a download safe is not who fetched it
but what it is: the `update_software` command, which only the bridge can send (over the kiosk's
authenticated MQTT session and its ACL), names the file's SHA-256 and size, and the kiosk checks
the bundle's Ed25519 signature (its key kept off the bridge) and every file's hash before it
installs anything. A kiosk holds no API token (its credentials are its broker account), so
asking for one would mean a second credential on every Pi for nothing. What a stranger could do
is spend the bridge's bandwidth: put a rate limit at the reverse proxy in front of this path.
"""

from __future__ import annotations

import re
from typing import Annotated, Final

from fastapi import APIRouter, HTTPException, Path, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from cloud_bridge import releases, rollouts
from cloud_bridge.access import Capability, Principal
from cloud_bridge.accounts import audit
from cloud_bridge.api.deps import (
    ERROR_RESPONSES,
    BridgeContext,
    ContextDep,
    SessionDep,
    client_address,
    conflict,
    forbidden,
    not_found,
    require,
)
from cloud_bridge.releases import BundleRefused, RangeNotSatisfiable, Release, ReleasePublic, Upload
from contract.software import VERSION_PATTERN

router = APIRouter(prefix="/api/v1", tags=["releases"], responses=ERROR_RESPONSES)

# The upload's body is the bundle itself: the request-size limit (runtime/http_limits.py) lets it
# stream to this route, which bounds it by releases_max_bytes.
UPLOAD_PATH: Final = re.compile(r"/api/v1/releases/[^/]+")
TAR: Final = "application/x-tar"

Version = Annotated[str, Path(pattern=VERSION_PATTERN, description="the release's version, as its manifest says")]


def all_sites_reader(who: Principal) -> None:
    """Releases and rollouts span sites: those who read every site's fleet read them."""
    if who.sites(Capability.FLEET_READ) is not None:
        raise forbidden(f"a {who.role} of one site does not see the fleet's releases and rollouts")


def _refuse_upload(context: BridgeContext, who: Principal, client: str | None, version: str, reason: str) -> None:
    with Session(context.engine) as session:
        audit(session, actor=who.username, action="release_upload", target=version, result="refused",
              now=context.clock(), client=client, reason=reason)
        session.commit()


def _record_upload(context: BridgeContext, who: Principal, client: str | None, upload: Upload, sha256: str,
                   manifest: dict[str, object]) -> ReleasePublic:
    """The release's row, committed before the file takes its place: a file is only ever
    replaced under a version that this upload has claimed in the database."""
    now = context.clock()
    with Session(context.engine) as session:
        if session.get(Release, upload.version) is not None:
            upload.discard()
            _refuse_upload(context, who, client, upload.version, "exists")
            raise conflict(f"release {upload.version} exists: a version is never replaced (delete it first)")
        row = releases.record(session, upload, sha256, manifest, by=who.username, now=now)
        audit(session, actor=who.username, action="release_upload", target=upload.version, result="ok", now=now,
              client=client, sha256=sha256, size_bytes=upload.size)
        try:
            session.commit()
        except IntegrityError:  # the same version uploaded at the same moment
            upload.discard()
            raise conflict(f"release {upload.version} exists: a version is never replaced") from None
        upload.keep()
        return ReleasePublic.model_validate(row, from_attributes=True)


@router.put("/releases/{version}", response_model=ReleasePublic, status_code=201,
            # Described as octet-stream, the generic binary type every client (and schemathesis)
            # can send; the route reads the bytes whatever the Content-Type says.
            openapi_extra={"requestBody": {"required": True, "content": {
                "application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}})
async def upload_release(
    http: Request, context: ContextDep, version: Version, who: Principal = require(Capability.FLEET_MANAGE),
) -> ReleasePublic:
    """Store a bundle (`doorstep release build` and `sign`), the file itself as the body. Its
    manifest must name this version; its SHA-256 and size are computed as it streams in. A
    version is never replaced (409). Audited as release_upload."""
    client = client_address(http)
    upload = await run_in_threadpool(Upload, context.releases_dir, version, context.releases_max_bytes)
    try:
        async for chunk in http.stream():
            if chunk:
                await run_in_threadpool(upload.write, chunk)
        sha256, manifest = await run_in_threadpool(upload.finish)
    except BundleRefused as refused:
        upload.discard()
        await run_in_threadpool(_refuse_upload, context, who, client, version, str(refused))
        too_large = upload.size > context.releases_max_bytes
        raise HTTPException(status_code=413 if too_large else 422, detail={
            "error": "payload_too_large" if too_large else "invalid_bundle", "reason": str(refused)}) from None
    except (ClientDisconnect, OSError):
        upload.discard()
        raise
    return await run_in_threadpool(_record_upload, context, who, client, upload, sha256, manifest)


@router.get("/releases", response_model=list[ReleasePublic])
def list_releases(session: SessionDep, who: Principal = require(Capability.FLEET_READ)) -> list[ReleasePublic]:
    """Every release stored, newest upload first."""
    all_sites_reader(who)
    return [ReleasePublic.model_validate(r, from_attributes=True) for r in releases.listed(session)]


@router.delete("/releases/{version}", status_code=204, response_class=Response)
def delete_release(
    session: SessionDep, context: ContextDep, http: Request, version: Version,
    who: Principal = require(Capability.FLEET_MANAGE),
) -> Response:
    """Remove a release and its file; refused (409) while an unfinished rollout sends it. Audited."""
    row = session.get(Release, version)
    if row is None:
        raise not_found(f"no release {version}")
    using = rollouts.uses_release(session, version)
    if using:
        raise conflict(f"rollout(s) {', '.join(map(str, using))} still send {version}: abort them first")
    session.delete(row)
    audit(session, actor=who.username, action="release_delete", target=version, result="ok", now=context.clock(),
          client=client_address(http), sha256=row.sha256)
    session.commit()
    releases.bundle_path(context.releases_dir, version).unlink(missing_ok=True)
    return Response(status_code=204)


@router.get("/releases/{version}/bundle", response_class=Response, responses={
    200: {"content": {TAR: {}}, "description": "the whole bundle"},
    206: {"content": {TAR: {}}, "description": "the range asked for (Range: bytes=N-), to resume a download"},
    416: {"description": "the range starts past the end"},
})
def download_bundle(session: SessionDep, context: ContextDep, http: Request, version: Version) -> Response:
    """The bundle as stored, for kiosks: no token (see this module's docstring for why that is
    safe). Resumable: a single byte range (RFC 9110, 14.2), with If-Range on the ETag, which is
    the file's SHA-256."""
    row = session.get(Release, version)
    path = releases.bundle_path(context.releases_dir, version)
    if row is None or not path.is_file():
        raise not_found(f"no release {version}")
    etag = releases.etag_of(row.sha256)
    headers = {"accept-ranges": "bytes", "etag": etag, "cache-control": "no-cache"}
    try:
        span = releases.requested_range(http.headers.get("range"), http.headers.get("if-range"), etag, row.size_bytes)
    except RangeNotSatisfiable as error:
        return Response(status_code=416, headers=headers | {"content-range": f"bytes */{row.size_bytes}"},
                        content=str(error), media_type="text/plain")
    whole = releases.ByteRange(0, row.size_bytes - 1)
    headers["content-length"] = str((span or whole).length)
    if span is not None:
        headers["content-range"] = f"bytes {span.first}-{span.last}/{row.size_bytes}"
    return StreamingResponse(releases.read_bytes(path, span or whole), status_code=206 if span else 200,
                             media_type=TAR, headers=headers)
