"""Versioned schema migrations, applied in order at start-up (see db.py)."""
