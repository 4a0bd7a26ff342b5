"""Release bundles (issue 20): what a Doorstep release is on disk, how it is built and signed,
and the check every kiosk makes before it installs one.

A bundle is one uncompressed tar: `manifest.json`, `manifest.sig` (an Ed25519 signature over
the manifest's exact bytes) and `wheels/*.whl`. Imports only the contract; the release key never
leaves the machine that signs (the bridge only stores and serves bundles)."""
