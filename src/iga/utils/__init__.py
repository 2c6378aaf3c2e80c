"""Small shared helpers (I/O, hashing, provenance, nested dicts, optional extras). No heavy imports here."""
