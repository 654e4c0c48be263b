"""Machine provisioning: the NodePool and Machine CRDs (group infra.pinnace.dev) and the kopf
operator that reconciles them into cloud instances booted with `node_bootstrap` user-data."""
