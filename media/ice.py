"""ICE settings of the hub: which local addresses to gather on, which address
to announce behind a 1:1 NAT, the UDP port range, and STUN/TURN servers.

aiortc offers no hook for any of these but the servers, so the hub installs
`HubIceConnection`, a subclass of aioice's `Connection`, as the class aiortc
instantiates. With no settings installed it behaves exactly as aioice does.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
from dataclasses import dataclass, field

import aioice.ice
import aiortc.rtcicetransport
from aioice.candidate import Candidate, candidate_foundation, candidate_priority
from aiortc import RTCConfiguration, RTCIceServer
from aiortc.rtcconfiguration import RTCBundlePolicy

logger = logging.getLogger(__name__)

# Tries at binding a random port of the range before giving up on an address.
PORT_BIND_ATTEMPTS = 64


@dataclass
class IceSettings:
    host_addresses: list[str] = field(default_factory=list)
    announce_addresses: list[str] = field(default_factory=list)
    udp_port_min: int = 0
    udp_port_max: int = 0


_settings: IceSettings | None = None


def install(settings: IceSettings) -> None:
    """Make every RTCPeerConnection of this process gather with `settings`."""
    global _settings
    for address in settings.host_addresses + settings.announce_addresses:
        try:
            ipaddress.ip_address(address)
        except ValueError:
            raise ValueError(
                f"ICE address {address!r} is not an IP address; "
                "list numeric IPv4 or IPv6 addresses"
            ) from None
    _settings = settings
    aiortc.rtcicetransport.Connection = HubIceConnection  # type: ignore[misc]
    logger.info(
        "ICE: gathering on %s, announcing %s, UDP ports %s",
        settings.host_addresses or "all non-loopback interfaces",
        settings.announce_addresses or "the bound addresses",
        f"{settings.udp_port_min}-{settings.udp_port_max}"
        if settings.udp_port_min
        else "any",
    )


def rtc_configuration(servers: list) -> RTCConfiguration:
    """Build an RTCConfiguration from configured servers. An empty list is
    passed on as empty: aiortc would otherwise add a public STUN server."""
    ice_servers = [
        RTCIceServer(urls=s.urls, username=s.username, credential=s.credential)
        for s in servers
    ]
    return RTCConfiguration(
        iceServers=ice_servers, bundlePolicy=RTCBundlePolicy.MAX_BUNDLE
    )


def _announced(bound: str, settings: IceSettings) -> str:
    if not settings.announce_addresses:
        return bound
    if bound in settings.host_addresses:
        index = settings.host_addresses.index(bound)
        if index < len(settings.announce_addresses):
            return settings.announce_addresses[index]
    family = ipaddress.ip_address(bound).version
    for address in settings.announce_addresses:
        if ipaddress.ip_address(address).version == family:
            return address
    return bound


class HubIceConnection(aioice.ice.Connection):
    async def get_component_candidates(
        self, component: int, addresses: list[str], timeout: int = 5
    ) -> list[Candidate]:
        settings = _settings
        if settings is None:
            return await super().get_component_candidates(component, addresses, timeout)
        if settings.host_addresses:
            addresses = settings.host_addresses

        loop = asyncio.get_running_loop()
        candidates: list[Candidate] = []
        host_protocols = []
        for address in addresses:
            bound = await self._bind(loop, address, settings)
            if bound is None:
                continue
            transport, protocol = bound
            port = transport.get_extra_info("sockname")[1]
            host = _announced(address, settings)
            protocol.local_candidate = Candidate(
                foundation=candidate_foundation("host", "udp", host),
                component=component,
                transport="udp",
                priority=candidate_priority(component, "host"),
                host=host,
                port=port,
                type="host",
            )
            candidates.append(protocol.local_candidate)
            host_protocols.append(protocol)
        self._protocols += host_protocols

        # STUN (server-reflexive) candidates for the host sockets, and TURN
        # candidates from the parent (it gathers no host ones with no address).
        tasks = []
        if self.stun_server:
            for protocol in host_protocols:
                if ipaddress.ip_address(protocol.local_candidate.host).version == 4:
                    tasks.append(
                        asyncio.create_task(
                            aioice.ice.server_reflexive_candidate(
                                protocol, self.stun_server
                            )
                        )
                    )
        tasks.append(
            asyncio.create_task(
                super().get_component_candidates(component, [], timeout)
            )
        )
        done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        for task in done:
            if task.exception() is not None:
                logger.warning("ICE: candidate gathering failed: %s", task.exception())
                continue
            result = task.result()
            if isinstance(result, list):
                candidates += result
            else:
                candidates.append(result[0])
        return candidates

    async def _bind(self, loop, address: str, settings: IceSettings):
        if settings.udp_port_min:
            ports = list(range(settings.udp_port_min, settings.udp_port_max + 1))
            random.shuffle(ports)
            ports = ports[:PORT_BIND_ATTEMPTS]
        else:
            ports = [0]
        last_error: OSError | None = None
        for port in ports:
            try:
                transport, protocol = await loop.create_datagram_endpoint(
                    lambda: aioice.ice.StunProtocol(self), local_addr=(address, port)
                )
            except OSError as exc:
                last_error = exc
                continue
            sock = transport.get_extra_info("socket")
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            return transport, protocol
        logger.warning(
            "ICE: could not bind a UDP port on %s in %s-%s: %s",
            address,
            settings.udp_port_min,
            settings.udp_port_max,
            last_error,
        )
        return None
