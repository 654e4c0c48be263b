"""The controllers of `pinnace controller-manager` (and of `pinnace server`, in process)."""
