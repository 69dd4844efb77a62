"""Everything the API Lambda needs; the matcher imports the shared parts (catalog, money, db)."""
