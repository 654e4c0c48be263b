"""Pinnace control plane: API types, storage, API server, client, controllers and scheduler."""
