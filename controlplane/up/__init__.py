"""`pinnace up` and `pinnace down`: from nothing to a cluster of Ready nodes, and back."""
