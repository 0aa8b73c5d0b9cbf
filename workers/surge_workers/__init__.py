"""Surge data plane: the JetStream contract, workers, gateway and load generator."""

__version__ = "0.1.0"
