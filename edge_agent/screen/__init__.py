"""The kiosk's touch screen: a small web app the agent serves on loopback (FastAPI, static
HTML/CSS/JS, no network), shown full-screen by Chromium on the Pi's display. docs/kiosk.md."""
