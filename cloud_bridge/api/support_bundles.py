"""Kiosks' support bundles: listed per kiosk, downloaded one by one (each download audited).

A bundle is asked for as any command is, `POST /api/v1/kiosks/{site}/{kiosk}/commands` with
`{"command": "upload_support_bundle"}` (audited there as `command`, with its request id); the
kiosk's upload is stored under that request id (cloud_bridge/support_bundles.py).
"""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from cloud_bridge import support_bundles
from cloud_bridge.access import Capability, Principal
from cloud_bridge.accounts import audit
from cloud_bridge.api.deps import (
    ERROR_RESPONSES,
    ContextDep,
    Page,
    PageDep,
    SessionDep,
    client_address,
    not_found,
    require,
    site_in_scope,
)
from cloud_bridge.support_bundles import SupportBundle, SupportBundlePublic

router = APIRouter(prefix="/api/v1", tags=["support bundles"], responses=ERROR_RESPONSES)


@router.get("/kiosks/{site}/{kiosk}/support-bundles", response_model=Page[SupportBundlePublic])
def list_support_bundles(
    session: SessionDep, page: PageDep, site: str, kiosk: str,
    who: Principal = require(Capability.SUPPORT_BUNDLES_READ),
) -> Page[SupportBundlePublic]:
    """The kiosk's bundles, newest first, with their manifests (what each holds, what was cut)."""
    site_in_scope(who, Capability.SUPPORT_BUNDLES_READ, site)
    items, total = support_bundles.listed(session, site, kiosk, limit=page.limit, offset=page.offset)
    return Page(items=items, total=total, limit=page.limit, offset=page.offset)


@router.get("/support-bundles/{request_id}/download", response_class=Response,
            responses={200: {"content": {"application/gzip": {}}, "description": "the tar.gz as the kiosk sent it"}})
def download_support_bundle(
    session: SessionDep, context: ContextDep, http: Request, request_id: str,
    who: Principal = require(Capability.SUPPORT_BUNDLES_READ),
) -> Response:
    """The bundle's archive. Audited as `support_bundle_download`, with who and from where."""
    bundle = session.get(SupportBundle, request_id)
    if bundle is None or not who.may(Capability.SUPPORT_BUNDLES_READ, bundle.site):
        raise not_found(f"no support bundle {request_id}")
    audit(session, actor=who.username, action="support_bundle_download", target=f"{bundle.site}/{bundle.kiosk}",
          result="ok", now=context.clock(), client=client_address(http), request_id=request_id,
          sha256=bundle.sha256)
    session.commit()
    name = f"{bundle.site}-{bundle.kiosk}-{bundle.received_at:%Y%m%dT%H%M%SZ}-support.tar.gz"
    return Response(bundle.content, media_type="application/gzip",
                    headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"})
