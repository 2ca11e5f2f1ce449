"""``python -m service.healthcheck``: exit 0 when the local service answers ``GET /v2/health/ready`` with 200.

The container health check of the service images (``HEALTHCHECK`` in ``docker/service*.Dockerfile`` and
``healthcheck`` in ``docker-compose.yml``). CUDA base images have no curl, so this is Python: the
standard library and pydantic-settings, not the service stack (numpy, FastAPI, ONNX Runtime), so it
starts in a fraction of a second.

It finds the service through the service's own settings: ``M2S_HOST`` and ``M2S_PORT`` as
:class:`service.address.ServiceAddress` (the base of :class:`service.config.Settings`) reads and
validates them, a wildcard host (0.0.0.0, ::) being asked on loopback. The ready route needs no token
(probes are unauthenticated), so ``M2S_API_TOKEN`` is not read. Exit status 0 = ready, 1 = not ready
or not answering (Docker's "unhealthy"), 2 = bad arguments or settings; one line on stdout or stderr
says which (Docker keeps it in ``docker inspect``'s health log).

Examples
--------
::

    python -m service.healthcheck                          # M2S_HOST / M2S_PORT, as the service
    python -m service.healthcheck --url http://10.0.0.5:8000/v2/health/ready --timeout 2
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from collections.abc import Sequence
from typing import Any

from pydantic import ValidationError

from service.address import ServiceAddress, env_name

READY_PATH = "/v2/health/ready"
DEFAULT_TIMEOUT_S = 5.0
EXIT_READY = 0
EXIT_NOT_READY = 1
EXIT_USAGE = 2

# A service listening on every interface is asked on loopback (same address family).
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1"}


def _explain(error: Any) -> str:
    """One pydantic error as one line that names the variable (the validators' messages already do)."""
    msg = error["msg"].removeprefix("Value error, ")
    env = env_name(str(error["loc"][0])) if error["loc"] else ""
    return msg if not env or msg.startswith(env) else f"{env}: {msg}"


def ready_url(address: ServiceAddress | None = None) -> str:
    """The ready route of the service listening at ``address``.

    Parameters
    ----------
    address : ServiceAddress or None
        Where the service listens (None = read ``M2S_HOST`` / ``M2S_PORT`` now, as the service does).

    Returns
    -------
    str
        ``http://<host>:<port>/v2/health/ready``; a wildcard host becomes loopback, an IPv6 host is
        bracketed.

    Raises
    ------
    ValueError
        ``M2S_HOST`` or ``M2S_PORT`` is invalid, or the port is 0 ("any free port", which cannot be
        probed); one line naming the variable.
    """
    if address is None:
        try:
            address = ServiceAddress()
        except ValidationError as err:
            raise ValueError("; ".join(_explain(e) for e in err.errors())) from None
    if address.port == 0:
        raise ValueError(
            f"{env_name('port')} must be 1-65535 to be probed, got 0; give the service a fixed port, "
            "or pass --url."
        )
    host = _WILDCARDS.get(address.host, address.host)
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{address.port}{READY_PATH}"


def probe(url: str, timeout_s: float = DEFAULT_TIMEOUT_S) -> tuple[bool, str]:
    """Ask ``url`` once; ready only for HTTP 200 with ``"ready": true`` in the JSON body.

    Parameters
    ----------
    url : str
        The ready route (http or https).
    timeout_s : float
        Connect and read timeout, s.

    Returns
    -------
    ready : bool
        Whether the service said it is ready.
    detail : str
        One line for the health log: the models and providers when ready, else the reason.

    Raises
    ------
    TypeError
        ``url`` is not a string.
    ValueError
        ``url`` is not http(s) or ``timeout_s`` is not positive.
    """
    if not isinstance(url, str):
        raise TypeError(f"url must be a string, got {type(url).__name__} instead.")
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"url must start with http:// or https://, got {url!r}.")
    if not timeout_s > 0:
        raise ValueError(f"timeout_s must be a positive number of seconds, got {timeout_s}.")
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as answer:
            body = answer.read()
    except urllib.error.HTTPError as err:  # 503 while warming up or shutting down
        return False, f"{url} answered HTTP {err.code}"
    except (urllib.error.URLError, OSError) as err:
        reason = getattr(err, "reason", err)
        return False, f"{url} did not answer: {reason}"
    try:
        health = json.loads(body)
    except ValueError:
        return False, f"{url} answered 200 but not JSON; is this the M2S-live service?"
    if not isinstance(health, dict) or health.get("ready") is not True:
        return False, f"{url} answered 200 without ready=true"
    return True, f"ready: {json.dumps(health.get('providers', {}), sort_keys=True)}"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point; returns the exit status (0 ready, 1 not ready, 2 usage)."""
    parser = argparse.ArgumentParser(
        prog="python -m service.healthcheck",
        description="Exit 0 when the M2S-live service answers GET /v2/health/ready with 200 "
        "(container health check); 1 otherwise.",
    )
    parser.add_argument(
        "--url", help="ready route to ask (default: from M2S_HOST and M2S_PORT, as the service)"
    )
    parser.add_argument(
        "--timeout", type=float, default=DEFAULT_TIMEOUT_S, help=f"seconds (default {DEFAULT_TIMEOUT_S:g})"
    )
    args = parser.parse_args(argv)
    try:
        url = args.url if args.url is not None else ready_url()
        ready, detail = probe(url, args.timeout)
    except ValueError as err:
        sys.stderr.write(f"healthcheck: error: {err}\n")
        return EXIT_USAGE
    (sys.stdout if ready else sys.stderr).write(f"healthcheck: {detail}\n")
    return EXIT_READY if ready else EXIT_NOT_READY


if __name__ == "__main__":
    sys.exit(main())
