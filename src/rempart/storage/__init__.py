"""Storage: the port (``ports.py``), its adapters and encryption at rest."""
