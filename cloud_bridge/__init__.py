"""The cloud side: receives every kiosk's messages, validates them with doorstep/contract/,
stores each once and confirms it to the kiosk (ingest.py, batch.py, store.py); keeps the fleet's
state, raises alerts, carries commands down (fleet.py, alerts.py, commands.py), and serves the
API (api/) and the dashboard (dashboard/). service.py runs the workers.

It imports doorstep/contract/ and doorstep/runtime/; never edge_agent, the broker operations nor
the apps in doorstep/ (tests/test_layers.py).
"""
