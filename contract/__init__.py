"""The wire contract between kiosks and the cloud: the one definition both the edge agent and
the cloud bridge import. docs/protocol.md describes it for people, and a test checks that the
examples there parse with these models.

The rule: this package imports nothing of ours but itself (tests/test_layers.py keeps it so), and
this file imports nothing; import each name from the module that owns it.

    errors     ContractError: a message or topic that breaks the contract
    topics     the topic tree: root, channels, reading kinds, event types, request ids, slugs,
               KioskTopics, parse_topic, the bridge's status topics, QoS
    storable   what the bridge's database can hold: integer and time bounds, StrictModel
               (the base of every message model), check_storable
    codec      a body's size limit, encode (canonical JSON), describe (a refusal in one line)
    payloads   device identity, reading payloads, event payloads
    telemetry  the kiosk's health report
    commands   command names, their argument models (COMMAND_ARGS), KioskCommand, outcomes,
               results, decode_command
    envelope   the envelope models, validate_upstream / validate_envelope, payload_model_of
    batch      batch framing: encode_batch, split_batch
    status     a kiosk's status, the bridge's Ack, decode_status, decode_ack
    sealing    readings sealed for the bridge (libsodium sealed boxes, or session boxes once
               every bridge worker says it opens them)
    clinical   the blood-pressure rule both sides judge by: categories, the guideline's
               lines, the dangerous-reading line, mmHg per kPa
"""
