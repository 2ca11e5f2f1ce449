"""``GET /metrics``: the Prometheus text exposition of the app's own registry."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from service.api.deps import Authenticated, error_responses

router = APIRouter(tags=["metrics"], dependencies=[Authenticated])


@router.get(
    "/metrics",
    response_class=Response,
    responses={
        200: {"content": {"text/plain": {}}, "description": "Prometheus text format."},
        **error_responses(401),
    },
    summary="Prometheus metrics",
)
def metrics(request: Request) -> Response:
    """Request counts and latencies, inference latency, per-stream rate and data age, provider, drops."""
    body, content_type = request.app.state.metrics.metrics_response()
    return Response(content=body, media_type=content_type)
