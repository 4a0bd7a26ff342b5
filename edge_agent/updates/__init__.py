"""Software updates on the kiosk (issue 20, docs/updates.md): download, verify, install side by
side, switch, and the health trial after which a new version is kept or goes back by itself."""
