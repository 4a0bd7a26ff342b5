"""Per-model data as YAML files, validated when loaded, so that a new cuff or washer model is a
file and not a code change: BLE device profiles (``profiles``, ``ble/``) and laundry register
maps (``laundry``, ``laundry/``). ``doorstep config validate`` checks them."""
