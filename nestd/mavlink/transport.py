"""Byte transports for MAVLink: UDP (listen or connect) and serial radios, as asyncio endpoints."""

from __future__ import annotations

import asyncio
import os
import socket
import termios
import tty
from collections.abc import Callable
from typing import Any

# (endpoint, source address or None for a serial stream, bytes received)
Receiver = Callable[["Endpoint", Any, bytes], None]

RCVBUF_BYTES = 4 << 20  # the 208 KB default drops datagrams at fleet rates (see MEASURED.md)


class Endpoint:
    """One place MAVLink bytes come and go. Datagram endpoints carry whole frames per read."""

    datagram = True

    def __init__(self, name: str, receiver: Receiver) -> None:
        self.name = name
        self.receiver = receiver
        self.rx_bytes = 0
        self.tx_bytes = 0
        self.tx_errors = 0

    async def open(self) -> None:
        raise NotImplementedError

    def send(self, data: bytes, addr: Any) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    @property
    def default_addr(self) -> Any:
        """Where to send when no peer address is known (connect-mode UDP, serial)."""
        return None


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, endpoint: UdpEndpoint) -> None:
        self.endpoint = endpoint

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        ep = self.endpoint
        ep.rx_bytes += len(data)
        ep.receiver(ep, addr, data)

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable for a peer that went away: UDP carries on.
        self.endpoint.tx_errors += 1


class UdpEndpoint(Endpoint):
    """`listen`: bind host:port and answer whoever sends; `connect`: send to host:port."""

    def __init__(
        self, name: str, receiver: Receiver, mode: str, host: str, port: int,
        rcvbuf_bytes: int = RCVBUF_BYTES,
    ) -> None:
        super().__init__(name, receiver)
        if mode not in ("listen", "connect"):
            raise ValueError(f"UDP mode must be listen or connect, not {mode!r}")
        self.mode = mode
        self.host = host
        self.port = port
        self.rcvbuf_bytes = rcvbuf_bytes
        self._transport: asyncio.DatagramTransport | None = None

    async def open(self) -> None:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, self.rcvbuf_bytes)
            if self.mode == "listen":
                sock.bind((self.host, self.port))
            else:
                sock.bind(("0.0.0.0" if self.host not in ("127.0.0.1", "localhost")
                           else "127.0.0.1", 0))
            sock.setblocking(False)
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _UdpProtocol(self), sock=sock
            )
        except OSError:
            sock.close()
            raise
        self._transport = transport

    @property
    def local_port(self) -> int:
        assert self._transport is not None
        return int(self._transport.get_extra_info("sockname")[1])

    @property
    def default_addr(self) -> Any:
        return (self.host, self.port) if self.mode == "connect" else None

    def send(self, data: bytes, addr: Any) -> None:
        if self._transport is None or self._transport.is_closing():
            self.tx_errors += 1
            return
        target = addr if addr is not None else self.default_addr
        if target is None:
            self.tx_errors += 1
            return
        self.tx_bytes += len(data)
        self._transport.sendto(data, target)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
            self._transport = None


class SerialEndpoint(Endpoint):
    """A telemetry radio on a serial device (or a pty in tests), read via the event loop."""

    datagram = False

    def __init__(self, name: str, receiver: Receiver, device: str, baud: int) -> None:
        super().__init__(name, receiver)
        self.device = device
        self.baud = baud
        self._fd: int | None = None
        self._out = bytearray()
        # At most ~2 s of bytes at the line rate: older queued bytes are stale commands.
        self.max_queued_bytes = max(baud // 10 * 2, 4096)
        self.dropped_bytes = 0
        self.reopen_failures = 0
        self.hangups = 0

    @property
    def closed(self) -> bool:
        return self._fd is None

    async def open(self) -> None:
        fd = os.open(self.device, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            if os.isatty(fd):
                tty.setraw(fd)
                attrs = termios.tcgetattr(fd)
                speed = _baud_constant(self.baud)
                attrs[4] = attrs[5] = speed
                termios.tcsetattr(fd, termios.TCSANOW, attrs)
        except (termios.error, ValueError):
            os.close(fd)
            raise
        self._fd = fd
        asyncio.get_running_loop().add_reader(fd, self._readable)

    def _readable(self) -> None:
        assert self._fd is not None
        try:
            data = os.read(self._fd, 65536)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            # End of file: the device went away (USB radio unplugged, pty closed). Stop
            # reading, or the loop spins on it; the link reopens it.
            self.hangups += 1
            self.close()
            return
        self.rx_bytes += len(data)
        self.receiver(self, None, data)

    def send(self, data: bytes, addr: Any) -> None:
        if self._fd is None:
            self.tx_errors += 1
            return
        self._out += data
        excess = len(self._out) - self.max_queued_bytes
        if excess > 0:
            del self._out[:excess]  # may cut a frame: the receiver resyncs on the next one
            self.dropped_bytes += excess
        self._flush()

    def _flush(self) -> None:
        if self._fd is None or not self._out:
            return
        loop = asyncio.get_running_loop()
        try:
            n = os.write(self._fd, self._out)
        except BlockingIOError:
            n = 0
        except OSError:
            self.tx_errors += 1
            self._out.clear()
            return
        self.tx_bytes += n
        del self._out[:n]
        if self._out:
            loop.add_writer(self._fd, self._on_writable)

    def _on_writable(self) -> None:
        assert self._fd is not None
        asyncio.get_running_loop().remove_writer(self._fd)
        self._flush()

    def close(self) -> None:
        if self._fd is not None:
            loop = asyncio.get_running_loop()
            loop.remove_reader(self._fd)
            loop.remove_writer(self._fd)
            os.close(self._fd)
            self._fd = None


def _baud_constant(baud: int) -> int:
    name = f"B{baud}"
    if not hasattr(termios, name):
        raise ValueError(f"unsupported baud rate {baud}")
    return int(getattr(termios, name))
