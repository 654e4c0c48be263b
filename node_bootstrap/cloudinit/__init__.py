"""cloud-init user-data for nodes: rendering (pure, no IO) and reading it back.

`render` turns a `BootstrapSpec` into `#cloud-config` user-data that installs containerd,
kubelet and kube-proxy and joins the node with a short-lived bootstrap token. `read` is its
inverse for the simulated node agent, which boots from the very files cloud-init would write.
`joinconfig` holds the paths and the `/etc/pinnace/bootstrap.json` document both sides share.
"""
