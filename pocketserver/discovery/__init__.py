"""LAN discovery: announce this server over mDNS/DNS-SD, browse for others, and the landing page.

See DESIGN.md, "LAN discovery". `announce` runs inside the server, `browse` backs
`pocketserver discover` (and, later, `.local` federation), `landing` serves GET /.
"""
