"""Finding the Ray cluster a batch runs on: `local`, `auto` or `ray://HOST:PORT`.

Ray is an optional extra (`pip install "kandanim[ray]"`), imported only here and only when
`--cluster` is given. Addresses that name a host are probed with a plain TCP connection
first (a few seconds at most), because Ray's own client retries an unreachable address for
much longer before it gives up.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from types import ModuleType
from typing import Literal

from kandanim.errors import RuntimeFailure, UserError

INSTALL_HINT = 'pip install "kandanim[ray]"'
CLIENT_PORT = 10001  # Ray Client's default port on the head node
PROBE_TIMEOUT_S = 3.0
ClusterKind = Literal["local", "auto", "client", "gcs"]


@dataclass(frozen=True)
class ClusterAddress:
    """Where to render: a new runtime on this machine (`local`), the cluster Ray finds by
    itself (`auto`), a Ray Client address (`ray://HOST:PORT`) or a head node's GCS address
    (`HOST:PORT`, as RAY_ADDRESS may hold). `text` is the address as given, for messages."""

    kind: ClusterKind
    text: str
    host: str | None = None
    port: int | None = None

    @property
    def ray_address(self) -> str | None:
        """The `address` argument of `ray.init`."""
        if self.kind == "local":
            return None
        if self.kind == "auto":
            return "auto"
        return self.text


def parse_address(text: str, env: Mapping[str, str] | None = None) -> ClusterAddress:
    """`--cluster` text → ClusterAddress; `auto` reads RAY_ADDRESS. Raises UserError."""
    env = os.environ if env is None else env
    value = text.strip()
    if value == "local":
        return ClusterAddress("local", value)
    if value == "auto":
        named = env.get("RAY_ADDRESS", "").strip()
        if not named or named in ("auto", "local"):
            return ClusterAddress("auto", "auto")
        return _remote(named, source="RAY_ADDRESS")
    if value.startswith("ray://"):
        return _remote(value, source="--cluster")
    raise UserError(
        f"--cluster: expected local, auto or ray://HOST:PORT, got {text!r}",
        hint="e.g. --cluster local, or --cluster ray://head-node:10001",
    )


def _remote(text: str, *, source: str) -> ClusterAddress:
    client = text.startswith("ray://")
    rest = text.removeprefix("ray://")
    host, sep, port_text = rest.rpartition(":")
    if not sep:
        host, port_text = rest, str(CLIENT_PORT) if client else ""
    if not host or not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise UserError(
            f"{source}: cannot read the Ray address {text!r}",
            hint="write it as ray://HOST:PORT (Ray Client, default port 10001) or HOST:PORT",
        )
    host = host.strip("[]")  # [::1]:10001
    kind: ClusterKind = "client" if client else "gcs"
    return ClusterAddress(kind, text, host, int(port_text))


def import_ray() -> ModuleType:
    """The `ray` module, or a UserError (exit 2) telling how to install it."""
    try:
        import ray
    except ImportError:
        raise UserError(
            "--cluster renders on Ray, which is not installed",
            hint=f"{INSTALL_HINT}, or render without --cluster",
        ) from None
    return ray


def probe(address: ClusterAddress, timeout: float = PROBE_TIMEOUT_S) -> None:
    """Raise RuntimeFailure (exit 1) unless something listens at the address's host:port."""
    if address.host is None or address.port is None:
        return
    try:
        with socket.create_connection((address.host, address.port), timeout=timeout):
            pass
    except OSError as error:
        reason = error.strerror or str(error) or type(error).__name__
        raise RuntimeFailure(
            f"cannot reach the Ray cluster at {address.text}: {reason}",
            hint=_unreachable_hint(address),
        ) from None


def _unreachable_hint(address: ClusterAddress) -> str:
    if address.kind == "client":
        return (
            "check the address and that the head node runs `ray start --head` (Ray Client "
            f"listens on port {CLIENT_PORT}); or render here with --cluster local"
        )
    return "check RAY_ADDRESS and that the head node is up; or render here with --cluster local"


@contextmanager
def connect(address: ClusterAddress) -> Iterator[ModuleType]:
    """Connect to (or start) the Ray runtime for a batch; disconnect afterwards.

    A runtime this process already started (a test session, a program embedding kandanim)
    is used as it is and left running.
    """
    ray = import_ray()
    probe(address)
    if ray.is_initialized():
        yield ray
        return
    try:
        ray.init(address=address.ray_address, **_init_options(address))
    except (ConnectionError, RuntimeError, TimeoutError, OSError) as error:
        raise RuntimeFailure(
            f"cannot connect to the Ray cluster at {address.text}: {_first_line(error)}",
            hint=_connect_hint(address),
        ) from error
    try:
        yield ray
    finally:
        ray.shutdown()


def _init_options(address: ClusterAddress) -> dict[str, object]:
    options: dict[str, object] = {"logging_level": logging.ERROR}
    if address.kind != "client":  # Ray Client takes few of ray.init's options
        options["log_to_driver"] = False  # workers report through the batch's event queue
    if address.kind == "local":
        options["include_dashboard"] = False  # ~80 MB and a port nobody looks at
    return options


def _connect_hint(address: ClusterAddress) -> str:
    if address.kind == "auto":
        return (
            "start a cluster with `ray start --head`, or set RAY_ADDRESS=HOST:PORT "
            "(or ray://HOST:PORT); or render here with --cluster local"
        )
    if address.kind == "local":
        return "see `ray status` and Ray's logs in /tmp/ray; or render without --cluster"
    return _unreachable_hint(address) + "; the cluster's Ray and Python versions must match ours"


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
