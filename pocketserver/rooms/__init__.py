"""The pure room core: versions, canonical JSON, hashes, signatures, redaction, auth rules, state resolution.

Nothing here awaits, stores or talks HTTP; every function takes plain data and returns plain data.
"""
