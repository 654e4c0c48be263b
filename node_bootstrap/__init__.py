"""node_bootstrap."""
