"""The cloud-controller-manager: upstream k8s.io/cloud-provider's controllers (cloud node, node
lifecycle, route, service) plus a garbage sweep, written on Pinnace's controller runtime and
driving a `providers.CloudProvider`. `ccm.manager` assembles them; `ccm.cli` is `pinnace ccm`."""
