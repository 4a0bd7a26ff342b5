"""The cloud side: receives every kiosk's messages, validates them with contract/,
stores each once and confirms it to the kiosk; keeps the fleet's state, raises alerts, carries
commands down (fleet.py, alerts.py, commands.py), stores release bundles and rolls them out to
kiosks (releases.py, rollouts.py), and serves the API (api/) and the dashboard (dashboard/).
service.py runs the workers.

Ingest is a pipeline of four stages, in this order (ingest.py runs them):

1. **Receive** (ingest.py, `Ingest._on_message`, on paho's network thread): the topic, the bytes
   and when they came are queued for the worker thread; nothing else happens on that thread.
2. **Decode** (decode.py, on a thread of its own, while the gulp before is stored): each message read once
   against the contract. An envelope is validated with its payload in one pass; a kiosk's
   *batch* (a message of many records, docs/protocol.md) in one pass over its container, each
   record typed for its channel; a sealed payload opened once (a batch's boxes half on a second
   thread: libsodium releases the GIL) and its JSON validated once. Refused messages wait apart.
3. **Store** (gulp.py, store.py, fleet.py): a *gulp*, the messages a worker gathered (up to
   `gulp_max`), in one transaction: the message rows (built from what decode produced, each
   payload the JSON pydantic-core writes for it), the kiosks' and devices' state, alerts,
   command results, webhook notifications.
   Stored on the worker thread (`Ingest.process`).
4. **Confirm** (ingest.py, `Ingest._confirm`, on the worker thread): the acks, per kiosk, only
   after the commit.

It imports contract/ and runtime/; never edge_agent, the broker operations nor
the apps in doorstep/ (tests/test_layers.py).
"""
