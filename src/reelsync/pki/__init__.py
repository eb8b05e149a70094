"""reelsync.pki: the workspace CA, server and agent certificates (cryptography)."""
