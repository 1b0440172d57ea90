"""The SSRF guard: no request to a private address unless the config allows it.

A model that can name URLs can otherwise reach the user's router, a cloud
metadata endpoint or a database on localhost. The hostname says nothing, so
every address it resolves to is checked, on every redirect hop, and the
request is then sent to the very address that was checked (the TLS name and
``Host`` header stay the hostname's), so a DNS answer that changes between
the check and the connection (rebinding) cannot slip through.

Only globally routable addresses pass by default; ``allow_private`` in the
tool's config lists addresses or networks (``"127.0.0.1"``, ``"10.0.0.0/8"``)
that may be reached anyway.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpx

from kfd.api import ToolError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class AddressGuard:
    """Decides which addresses a tool may reach."""

    def __init__(self, tool: str, allow_private: Iterable[str] = ()) -> None:
        self.tool = tool
        self.allowed: list[IPNetwork] = []
        for entry in allow_private:
            try:
                self.allowed.append(ipaddress.ip_network(str(entry).strip(), strict=False))
            except ValueError:
                raise ToolError(
                    f"[tools.{tool}] allow_private: {entry!r} is not an IP address or network "
                    '(write "127.0.0.1" or "10.0.0.0/8"); fix the config'
                ) from None

    @classmethod
    def from_config(cls, tool: str, config: Any) -> AddressGuard:
        entries = config.get("allow_private", []) if hasattr(config, "get") else []
        if isinstance(entries, str) or not isinstance(entries, list):
            raise ToolError(f"[tools.{tool}] allow_private must be a list of addresses")
        return cls(tool, entries)

    def refusal(self, address: IPAddress) -> str | None:
        """Why ``address`` may not be reached ("is a loopback address: ..."), or None."""
        mapped = getattr(address, "ipv4_mapped", None)
        plain: IPAddress = mapped if mapped is not None else address
        if plain.is_global and not plain.is_multicast:
            return None
        if any(plain in network for network in self.allowed):
            return None
        kind = "is " + (
            "a loopback"
            if plain.is_loopback
            else "a link-local"
            if plain.is_link_local
            else "a private"
            if plain.is_private
            else "a non-public"
        )
        return (
            f"{kind} address: {self.tool} does not reach private networks unless "
            f'[tools.{self.tool}] allow_private lists it (e.g. allow_private = ["{plain}"])'
        )

    async def resolve(self, url: httpx.URL) -> IPAddress:
        """The checked address to connect to for ``url``; raises ToolError if refused."""
        if url.scheme not in ("http", "https"):
            raise ToolError(f"only http and https URLs can be fetched, not {url.scheme!r}")
        host = url.host
        if not host:
            raise ToolError(f"the URL {url} has no host")
        try:
            addresses: list[IPAddress] = [ipaddress.ip_address(host)]
        except ValueError:
            addresses = await _lookup(host, url.port or (443 if url.scheme == "https" else 80))
        for address in addresses:
            reason = self.refusal(address)
            if reason is not None:
                where = host if host == str(address) else f"{host} resolves to {address}, which"
                raise ToolError(f"refused {url}: {where} {reason}")
        return addresses[0]

    async def pinned_request(
        self, client: httpx.AsyncClient, method: str, url: httpx.URL, **kwargs: Any
    ) -> httpx.Request:
        """A request for ``url`` that connects to the checked address only."""
        address = await self.resolve(url)
        if url.host == str(address):
            return client.build_request(method, url, **kwargs)
        headers = httpx.Headers(kwargs.pop("headers", None))
        headers["Host"] = url.netloc.decode("ascii")
        extensions = dict(kwargs.pop("extensions", None) or {})
        extensions["sni_hostname"] = url.host
        pinned = url.copy_with(host=str(address))
        return client.build_request(
            method, pinned, headers=headers, extensions=extensions, **kwargs
        )


async def _lookup(host: str, port: int) -> list[IPAddress]:
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise ToolError(f"cannot resolve {host}: {exc.strerror}; check the URL") from None
    addresses: list[IPAddress] = []
    for info in infos:
        address = ipaddress.ip_address(info[4][0].split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise ToolError(f"cannot resolve {host}: no address")
    return addresses
