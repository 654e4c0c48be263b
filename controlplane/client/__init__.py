"""The only code that speaks HTTP to the API server: an asyncio client over aiohttp.

Controllers, the scheduler, the CCM and node agents use it; they never reach storage. Status
bodies become `controlplane.api.errors` exceptions here, once; 429 and 5xx answers are retried
with backoff honouring Retry-After.
"""

from __future__ import annotations

import asyncio
import base64
import ssl
import tempfile
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import yaml

from controlplane.api import errors
from controlplane.client.shared_decode import shared_decoder

__all__ = ["Client", "ResourcePath", "load_kubeconfig"]


@dataclass(frozen=True)
class ResourcePath:
    group: str
    version: str
    plural: str
    namespaced: bool = True

    def url(self, namespace: str | None = None, name: str = "", subresource: str = "") -> str:
        base = f"/api/{self.version}" if not self.group else f"/apis/{self.group}/{self.version}"
        if self.namespaced and namespace:
            base += f"/namespaces/{namespace}"
        base += f"/{self.plural}"
        if name:
            base += f"/{name}"
            if subresource:
                base += f"/{subresource}"
        return base


@dataclass(frozen=True)
class Credentials:
    server: str
    ssl: ssl.SSLContext
    token: str = ""
    # The CA the kubeconfig trusts, as PEM (empty when it names none): what a controller
    # publishes as the cluster's root CA when it is given no --root-ca-file, as upstream's.
    ca_pem: bytes = b""


def load_kubeconfig(path: Path, context: str = "") -> Credentials:
    """Read a kubeconfig (embedded data or file references) into a server URL and TLS context."""
    doc = yaml.safe_load(path.read_text())
    ctx_name = context or doc.get("current-context", "")
    ctx = next(c["context"] for c in doc["contexts"] if c["name"] == ctx_name)
    cluster = next(c["cluster"] for c in doc["clusters"] if c["name"] == ctx["cluster"])
    user = next(u["user"] for u in doc["users"] if u["name"] == ctx["user"])

    def material(entry: Mapping[str, Any], key: str) -> bytes | None:
        if entry.get(f"{key}-data"):
            return base64.b64decode(entry[f"{key}-data"])
        if entry.get(key):
            return Path(entry[key]).read_bytes()
        return None

    tls = ssl.create_default_context()
    ca = material(cluster, "certificate-authority")
    if ca is not None:
        tls = ssl.create_default_context(cadata=ca.decode())
    cert = material(user, "client-certificate")
    key = material(user, "client-key")
    if cert is not None and key is not None:
        # ssl only loads chains from files; write them to a private temporary directory.
        with tempfile.TemporaryDirectory() as tmp:
            cert_path, key_path = Path(tmp) / "c.crt", Path(tmp) / "c.key"
            cert_path.write_bytes(cert)
            key_path.write_bytes(key)
            key_path.chmod(0o600)
            tls.load_cert_chain(str(cert_path), str(key_path))
    return Credentials(
        server=cluster["server"].rstrip("/"), ssl=tls, token=str(user.get("token", "")), ca_pem=ca or b""
    )


class Client:
    def __init__(
        self, credentials: Credentials, *, user_agent: str = "pinnace", max_retries: int = 5
    ) -> None:
        self._creds = credentials
        self._user_agent = user_agent
        self._max_retries = max_retries
        self._session: aiohttp.ClientSession | None = None

    @property
    def ca_pem(self) -> bytes:
        """The CA this client trusts, as its kubeconfig gave it (empty if none)."""
        return self._creds.ca_pem

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            headers = {"User-Agent": self._user_agent, "Accept": "application/json"}
            if self._creds.token:
                headers["Authorization"] = f"Bearer {self._creds.token}"
            self._session = aiohttp.ClientSession(
                base_url=self._creds.server,
                headers=headers,
                connector=aiohttp.TCPConnector(ssl=self._creds.ssl, limit=64),
                timeout=aiohttp.ClientTimeout(total=None, sock_connect=10),
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        content_type: str = "application/json",
    ) -> Any:
        data = orjson.dumps(body) if body is not None else None
        headers = {"Content-Type": content_type} if data is not None else {}
        delay = 0.2
        for attempt in range(self._max_retries + 1):
            async with self._http().request(method, path, params=params, data=data, headers=headers) as resp:
                raw = await resp.read()
                if resp.status < 400:
                    return orjson.loads(raw) if raw else None
                retryable = resp.status == 429 or resp.status >= 500
                if retryable and attempt < self._max_retries:
                    retry_after = resp.headers.get("Retry-After")
                    await asyncio.sleep(float(retry_after) if retry_after else delay)
                    delay = min(delay * 2, 5.0)
                    continue
                raise _error(resp.status, raw)
        raise errors.ServiceUnavailable(message="retries exhausted")

    async def get(self, rp: ResourcePath, name: str, namespace: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", rp.url(namespace, name))
        return result

    async def list(
        self, rp: ResourcePath, namespace: str | None = None, *, params: Mapping[str, str] | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("GET", rp.url(namespace), params=params)
        return result

    async def create(
        self, rp: ResourcePath, obj: dict[str, Any], namespace: str | None = None
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.request("POST", rp.url(namespace), body=obj)
        return result

    async def patch(
        self,
        rp: ResourcePath,
        name: str,
        patch: Any,
        namespace: str | None = None,
        *,
        subresource: str = "",
        patch_type: str = "application/merge-patch+json",
        params: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        result: dict[str, Any] = await self.request(
            "PATCH", rp.url(namespace, name, subresource), body=patch, content_type=patch_type, params=params
        )
        return result

    async def delete(
        self,
        rp: ResourcePath,
        name: str,
        namespace: str | None = None,
        *,
        options: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        result: dict[str, Any] | None = await self.request("DELETE", rp.url(namespace, name), body=options)
        return result

    async def watch(
        self,
        rp: ResourcePath,
        namespace: str | None = None,
        *,
        params: Mapping[str, str] | None = None,
        shared: bool = False,
    ) -> AsyncGenerator[dict[str, Any], None]:
        """Yield watch events ({"type", "object"}) until the server ends the stream. With
        `shared`, an event may be the very object yielded to another shared watcher of this
        process (see `shared_decode`): the caller must not modify it."""
        decode = shared_decoder().decode if shared else orjson.loads
        query = {"watch": "true", **(params or {})}
        async with self._http().get(
            rp.url(namespace), params=query, timeout=aiohttp.ClientTimeout(total=None)
        ) as resp:
            if resp.status >= 400:
                raise _error(resp.status, await resp.read())
            pending = b""
            async for chunk in resp.content.iter_any():
                # One split per chunk: splitting one line off at a time copies the rest of a
                # large chunk (dozens of events under load) once per event.
                lines = (pending + chunk if pending else chunk).split(b"\n")
                pending = lines.pop()
                for line in lines:
                    if line.strip():
                        yield decode(line)


def _error(status: int, raw: bytes) -> errors.StatusError:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status":
        return errors.StatusError.from_status(body)
    return errors.StatusError.from_status({"code": status, "message": raw.decode(errors="replace")[:512]})
