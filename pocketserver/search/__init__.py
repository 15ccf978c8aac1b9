"""Server-side search over room events.

Spec: client-server-api, "Server Side Search".
"""
