"""Prometheus metrics: per-app registry, stream health gauges, drops, providers, scrape callbacks."""

from prometheus_client.parser import text_string_to_metric_families

from service.hub import StateHub
from service.metrics import ServiceMetrics


def _samples(metrics: ServiceMetrics) -> dict[tuple[str, tuple], float]:
    body, content_type = metrics.metrics_response()
    assert content_type.startswith("text/plain")
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def test_stream_gauges_states_drops_and_provider():
    """Stream sample rate, data age, stale, states, drops and the provider appear with their labels."""
    m = ServiceMetrics()
    m.set_stream("eeg-1", 199.5, 0.02, stale=False)
    m.state_emitted("eeg-1")
    m.state_emitted("eeg-1")
    m.dropped(3)
    m.set_provider("m2s-synthetic-demo:1", "eeg", "CPUExecutionProvider")
    s = _samples(m)
    assert s[("m2s_stream_effective_srate_hz", (("stream", "eeg-1"),))] == 199.5
    assert s[("m2s_stream_data_age_seconds", (("stream", "eeg-1"),))] == 0.02
    assert s[("m2s_stream_stale", (("stream", "eeg-1"),))] == 0.0
    assert s[("m2s_states_emitted_total", (("stream", "eeg-1"),))] == 2
    assert s[("m2s_ws_dropped_messages_total", ())] == 3
    key = ("m2s_execution_provider_info", (("modality", "eeg"), ("model", "m2s-synthetic-demo:1"),
                                            ("provider", "CPUExecutionProvider")))  # fmt: skip
    assert s[key] == 1


def test_detached_stream_disappears_and_registries_are_separate():
    """remove_stream drops a stream's series; two apps' metrics never share a registry."""
    a, b = ServiceMetrics(), ServiceMetrics()
    a.set_stream("x", 10.0, 1.0, stale=True)
    a.state_emitted("x")
    a.remove_stream("x")
    assert not any(labels == (("stream", "x"),) for _, labels in _samples(a))
    b.dropped(1)
    assert _samples(a)[("m2s_ws_dropped_messages_total", ())] == 0


def test_scrape_callback_refreshes_and_cannot_break_rendering():
    """Callbacks run before every scrape; one that raises is logged and the page still renders."""
    m = ServiceMetrics()
    calls = []
    m.on_scrape(lambda: calls.append(1) or m.set_stream("s", 5.0, None))
    m.on_scrape(lambda: 1 / 0)
    s = _samples(m)
    assert calls == [1] and s[("m2s_stream_effective_srate_hz", (("stream", "s"),))] == 5.0


def test_hub_drops_are_counted():
    """A hub built with on_dropped=metrics.dropped counts what slow clients lose."""
    import asyncio

    from service.schemas import EmotionState, ModelRef

    m = ServiceMetrics()

    async def scenario():
        hub = StateHub(queue_size=2, on_dropped=m.dropped)
        sub = hub.subscribe()
        for i in range(5):
            hub.publish(
                EmotionState(
                    label="neutral",
                    probabilities={"neutral": 1.0},
                    modality="eeg",
                    model=ModelRef(name="m", version=1),
                    wall_time=float(i),
                )  # fmt: skip
            )
        first = await sub.get()
        hub.close()
        return first

    first = asyncio.run(scenario())
    assert first == {"type": "dropped", "count": 3}
    assert _samples(m)[("m2s_ws_dropped_messages_total", ())] == 3
