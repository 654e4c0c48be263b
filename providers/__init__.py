"""Cloud providers: capability interfaces (`providers.capabilities`), plain data
(`providers.model`), one error tree (`providers.errors`), ownership tags (`providers.tags`), how
SDK calls are made (`providers.calls`), the cloud config file (`providers.config`), and the
registry (`providers.registry`). One sub-package per cloud. Nothing here imports Pinnace's
control plane; boto3 and libcloud are imported only below this package."""
