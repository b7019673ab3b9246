"""A small TCP proxy (asyncio, in a thread of its own) that the suite puts between the
service and MariaDB, and between the service and the operator.

On command it adds a delay to every chunk it forwards, resets connections at random
(RST, not a polite FIN), or resets all of them at once. It also knows which requests
are waiting for their answer, so the suite can kill the process that sent one.
"""
import asyncio
import random
import socket
import struct
import threading
import time

CHUNK = 65536


class _Pair:
    __slots__ = ("client", "upstream", "client_port", "upstream_port", "pending_since", "head", "closed")

    def __init__(self, client, client_port):
        self.client = client            # StreamWriter towards the service
        self.upstream = None            # StreamWriter towards the real server
        self.client_port = client_port  # the service's local port of this connection
        self.upstream_port = None       # our local port towards the real server
        self.pending_since = None       # a request forwarded, no answer yet (monotonic)
        self.head = b""                 # the first bytes of that request
        self.closed = False


def _abort(writer):
    """Close with RST: SO_LINGER 0, then drop the socket without flushing."""
    if writer is None:
        return
    sock = writer.get_extra_info("socket")
    try:
        if sock is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    writer.transport.abort()


class Proxy:
    def __init__(self, name, upstream_port, seed, loop):
        self.name = name
        self.upstream_port = upstream_port
        self.loop = loop
        self.rng = random.Random(seed)
        self.delay = (0.0, 0.0)
        self.reset_rate = 0.0
        self.pairs = set()
        self.resets = []        # monotonic time of every reset we made
        self.refused = 0        # connections we could not open upstream (server down)
        self.connections = 0
        self.server = None
        self.port = None

    # -- commands (from any thread) ------------------------------------------------------
    def configure(self, delay=(0.0, 0.0), reset_rate=0.0):
        self.delay = (float(delay[0]), float(delay[1]))
        self.reset_rate = float(reset_rate)

    def reset_all(self):
        """Reset every open connection now; returns how many."""
        fut = asyncio.run_coroutine_threadsafe(self._reset_all(), self.loop)
        return fut.result(10)

    def inflight(self, min_age=0.0):
        """[(client_port, age seconds, request head)] for requests still waiting for an answer."""
        now = time.monotonic()
        return [(p.client_port, now - p.pending_since, p.head) for p in list(self.pairs)
                if p.pending_since is not None and not p.closed and now - p.pending_since >= min_age]

    def upstream_ports(self):
        return {p.upstream_port for p in list(self.pairs) if p.upstream_port}

    # -- inside the loop -----------------------------------------------------------------
    async def start(self):
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, backlog=512)
        self.port = self.server.sockets[0].getsockname()[1]

    async def stop(self):
        if self.server is not None:
            self.server.close()
        await self._reset_all(count=False)

    async def _reset_all(self, count=True):
        n = 0
        for p in list(self.pairs):
            if not p.closed:
                self._reset(p, count)
                n += 1
        return n

    def _reset(self, pair, count=True):
        if pair.closed:
            return
        pair.closed = True
        _abort(pair.client)
        _abort(pair.upstream)
        self.pairs.discard(pair)
        if count:
            self.resets.append(time.monotonic())

    def _close(self, pair):
        if pair.closed:
            return
        pair.closed = True
        for w in (pair.client, pair.upstream):
            if w is not None:
                try:
                    w.close()
                except Exception:  # noqa: BLE001 -- already gone
                    pass
        self.pairs.discard(pair)

    async def _serve(self, reader, writer):
        self.connections += 1
        pair = _Pair(writer, writer.get_extra_info("peername")[1])
        self.pairs.add(pair)
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection("127.0.0.1", self.upstream_port), 3)
        except (OSError, asyncio.TimeoutError):
            self.refused += 1
            pair.closed = True
            self.pairs.discard(pair)
            _abort(writer)
            return
        pair.upstream = up_writer
        pair.upstream_port = up_writer.get_extra_info("sockname")[1]
        if pair.closed:  # reset while we were connecting
            _abort(up_writer)
            return
        await asyncio.gather(self._pump(pair, reader, up_writer, True),
                             self._pump(pair, up_reader, writer, False))

    async def _pump(self, pair, reader, writer, towards_server):
        try:
            while not pair.closed:
                data = await reader.read(CHUNK)
                if not data:
                    break
                lo, hi = self.delay
                if hi > 0:
                    await asyncio.sleep(self.rng.uniform(lo, hi))
                if pair.closed:
                    return
                if self.reset_rate > 0 and self.rng.random() < self.reset_rate:
                    self._reset(pair)
                    return
                if towards_server:
                    if pair.pending_since is None:
                        pair.pending_since = time.monotonic()
                        pair.head = b""
                    if len(pair.head) < 2048:
                        pair.head += data[:2048 - len(pair.head)]
                else:
                    pair.pending_since = None
                    pair.head = b""
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError, asyncio.CancelledError):
            pass
        self._close(pair)


class ProxyRunner:
    """Runs proxies on an event loop in a daemon thread."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="faults-proxy", daemon=True)
        self.thread.start()
        self.proxies = []

    def add(self, name, upstream_port, seed):
        proxy = Proxy(name, upstream_port, seed, self.loop)
        asyncio.run_coroutine_threadsafe(proxy.start(), self.loop).result(10)
        self.proxies.append(proxy)
        return proxy

    def close(self):
        for p in self.proxies:
            try:
                asyncio.run_coroutine_threadsafe(p.stop(), self.loop).result(10)
            except Exception:  # noqa: BLE001 -- closing anyway
                pass
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
