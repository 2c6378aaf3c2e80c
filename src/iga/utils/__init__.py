"""Small shared helpers (I/O, hashing, provenance). No heavy imports here."""
