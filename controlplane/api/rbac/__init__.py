"""Role-based access control, pure: rule matching, subjects, rule resolution, escalation checks,
ClusterRole aggregation, the bootstrap policy and its reconciliation. No IO; the API server's
`controlplane.apiserver.rbac` feeds it objects from storage."""
