"""Surge control plane: the MessagingCluster model, decision core and kopf shell.

Importing this package must stay cheap: it must not import kopf or kubernetes.
"""

__version__ = "0.1.0"
