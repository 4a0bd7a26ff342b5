"""Omron's own protocol: reading the records a cuff keeps in its memory over Omron's vendor
service (the HEM-71xxT/-T2 "connect" cuffs that never send the SIG Blood Pressure Measurement).

Pure decoders (``frames``, ``records``, ``memory``, ``advertisement``) and one session over
bleak (``session``); the per-model memory maps are YAML in firmware_configs/ble/.
"""
