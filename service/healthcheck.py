"""``python -m service.healthcheck``: exit 0 when the local service answers ``GET /v2/health/ready`` with 200.

The container health check of the service images (``HEALTHCHECK`` in ``docker/service*.Dockerfile`` and
``healthcheck`` in ``docker-compose.yml``). CUDA base images have no curl, so this is Python, and it uses
the standard library only: it starts in a few tens of milliseconds and needs nothing the image may lack.

It finds the service the way the service finds its own address: ``M2S_HOST`` and ``M2S_PORT`` (defaults
127.0.0.1 and 8000), a wildcard host (0.0.0.0, ::) being asked on loopback. Exit status 0 = ready,
1 = not ready or not answering (Docker's "unhealthy"), 2 = bad arguments or settings; one line on
stdout or stderr says which (Docker keeps it in ``docker inspect``'s health log).

Examples
--------
::

    python -m service.healthcheck                          # M2S_HOST / M2S_PORT, as the service
    python -m service.healthcheck --url http://10.0.0.5:8000/v2/health/ready --timeout 2
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence

READY_PATH = "/v2/health/ready"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
DEFAULT_TIMEOUT_S = 5.0
EXIT_READY = 0
EXIT_NOT_READY = 1
EXIT_USAGE = 2

# A service listening on every interface is asked on loopback (same address family).
_WILDCARDS = {"0.0.0.0": "127.0.0.1", "::": "::1", "[::]": "::1", "": DEFAULT_HOST}


def ready_url(env: Mapping[str, str] | None = None) -> str:
    """The ready route of the service configured by ``M2S_HOST`` / ``M2S_PORT`` in ``env``.

    Parameters
    ----------
    env : mapping of str to str or None
        Environment to read (None = ``os.environ``).

    Returns
    -------
    str
        ``http://<host>:<port>/v2/health/ready``; a wildcard host becomes loopback, an IPv6 host is
        bracketed.

    Raises
    ------
    ValueError
        ``M2S_PORT`` is not an integer in 1-65535 (0, "any free port", cannot be probed).
    """
    env = os.environ if env is None else env
    host = env.get("M2S_HOST", DEFAULT_HOST).strip()
    host = _WILDCARDS.get(host, host)
    text = env.get("M2S_PORT", str(DEFAULT_PORT)).strip()
    try:
        port = int(text)
    except ValueError:
        raise ValueError(f"M2S_PORT must be a TCP port number, got {text!r}.") from None
    if not 1 <= port <= 65535:
        raise ValueError(
            f"M2S_PORT must be 1-65535 to be probed, got {port}; give the service a fixed port, "
            "or pass --url."
        )
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"http://{host}:{port}{READY_PATH}"


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
    parser.add_argument("--url", help="ready route to ask (default: from M2S_HOST and M2S_PORT)")
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
