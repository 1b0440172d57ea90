"""OpenTelemetry export of traces and metrics (``[telemetry]``, off by default).

Built from what the daemon already knows, with the official SDK and its
OTLP/HTTP exporter:

- a span per turn (``kfd.turn``: from ``turn.started`` to ``turn.completed``),
  and inside it a span per model request (``kfd.model_request``: its ledger
  row, timed by its latency) and per tool call (``kfd.tool``: from
  ``tool.started`` to ``tool.completed``);
- metrics: ``kfd.tokens`` (by direction and model), ``kfd.cost`` (US dollars,
  by model), ``kfd.model.latency`` and ``kfd.tool.duration`` (milliseconds).

Nothing secret goes out: attributes are ids, names, counts and states. The
SDK is imported only when telemetry is enabled, and its exporters run in
their own threads, never on the event loop.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from kfd.protocol import Event, LedgerEntry, ToolCompleted, ToolStarted, TurnCompleted, TurnStarted

if TYPE_CHECKING:
    from kfd.config import TelemetryConfig

log = logging.getLogger(__name__)

_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


@dataclass(slots=True)
class _Open:
    turn: Any
    tools: dict[str, Any] = field(default_factory=dict)


class Telemetry:
    """Spans and metrics of one daemon. `start` returns None when disabled."""

    def __init__(self, tracer_provider: Any, meter_provider: Any) -> None:
        from opentelemetry import trace

        self._trace = trace
        self._tracer_provider = tracer_provider
        self._meter_provider = meter_provider
        self._tracer = tracer_provider.get_tracer("kfd")
        meter = meter_provider.get_meter("kfd")
        self._tokens = meter.create_counter("kfd.tokens", unit="{token}", description="tokens")
        self._cost = meter.create_counter("kfd.cost", unit="USD", description="model cost")
        self._latency = meter.create_histogram(
            "kfd.model.latency", unit="ms", description="model request latency"
        )
        self._tool_duration = meter.create_histogram(
            "kfd.tool.duration", unit="ms", description="tool call duration"
        )
        self._open: dict[str, _Open] = {}

    @classmethod
    def start(cls, config: TelemetryConfig, daemon_id: str) -> Telemetry | None:
        """The exporters ``config`` asks for, or None when telemetry is off."""
        if not config.enabled:
            return None
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        base = config.endpoint.rstrip("/")
        headers = {name: _expand(value) for name, value in config.headers.items()}
        resource = Resource.create(
            {"service.name": config.service_name, "service.instance.id": daemon_id}
        )
        tracer_provider = TracerProvider(resource=resource)
        tracer_provider.add_span_processor(
            BatchSpanProcessor(
                OTLPSpanExporter(endpoint=f"{base}/v1/traces", headers=headers),
                schedule_delay_millis=1000,
            )
        )
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=f"{base}/v1/metrics", headers=headers),
            export_interval_millis=config.export_interval_s * 1000,
        )
        meter_provider = MeterProvider(resource=resource, metric_readers=[reader])
        log.info("exporting traces and metrics to %s", base)
        return cls(tracer_provider, meter_provider)

    # -- what the daemon tells it -----------------------------------------------

    def observe(self, event: Event) -> None:
        """Open and close spans from the session's events."""
        try:
            self._observe(event)
        except Exception:  # telemetry must never disturb a turn
            log.exception("telemetry failed on an event")

    def _observe(self, event: Event) -> None:
        match event:
            case TurnStarted():
                self._end_turn(event.session, "superseded")
                span = self._tracer.start_span(
                    "kfd.turn",
                    start_time=_ns(event.ts),
                    attributes={"kfd.session": event.session, "kfd.turn": event.turn},
                )
                self._open[event.session] = _Open(span)
            case TurnCompleted():
                self._end_turn(event.session, event.stop_reason, _ns(event.ts))
            case ToolStarted():
                opened = self._open.get(event.session)
                span = self._tracer.start_span(
                    "kfd.tool",
                    context=self._within(opened),
                    start_time=_ns(event.ts),
                    attributes={"kfd.session": event.session, "kfd.tool": event.name},
                )
                if opened is not None:
                    opened.tools[event.call_id] = span
            case ToolCompleted():
                opened = self._open.get(event.session)
                span = opened.tools.pop(event.call_id, None) if opened is not None else None
                self._tool_duration.record(event.duration_ms, {"kfd.tool": event.name})
                if span is not None:
                    span.set_attribute("kfd.tool.status", event.status)
                    span.end(end_time=_ns(event.ts))
            case _:
                pass

    def model_request(self, entry: LedgerEntry) -> None:
        """A model request ended (its ledger row, closed): a span and the metrics."""
        try:
            self._model_request(entry)
        except Exception:
            log.exception("telemetry failed on a model request")

    def _model_request(self, entry: LedgerEntry) -> None:
        labels = {"kfd.model": entry.model, "kfd.provider": entry.provider}
        for direction, count in (
            ("input", entry.input_tokens),
            ("output", entry.output_tokens),
            ("cached_input", entry.cached_input_tokens),
        ):
            if count:
                self._tokens.add(count, {**labels, "kfd.direction": direction})
        if entry.cost_usd:
            self._cost.add(entry.cost_usd, labels)
        latency = entry.latency_ms or 0.0
        self._latency.record(latency, {**labels, "kfd.state": entry.state})
        end = _ns(entry.ts)
        span = self._tracer.start_span(
            "kfd.model_request",
            context=self._within(self._open.get(entry.session)),
            start_time=end - int(latency * 1e6),
            attributes={
                **labels,
                "kfd.session": entry.session,
                "kfd.turn": entry.turn,
                "kfd.ledger_id": entry.id,
                "kfd.state": entry.state,
                "kfd.input_tokens": entry.input_tokens,
                "kfd.output_tokens": entry.output_tokens,
                "kfd.cost_usd": entry.cost_usd,
                "kfd.retries": entry.retries,
                "kfd.estimated": entry.estimated,
            },
        )
        span.end(end_time=end)

    def shutdown(self) -> None:
        """End the open spans and send what is left (blocking: run it in a thread)."""
        for session in list(self._open):
            self._end_turn(session, "interrupted")
        self._tracer_provider.shutdown()
        self._meter_provider.shutdown()

    def _within(self, opened: _Open | None) -> Any:
        return self._trace.set_span_in_context(opened.turn) if opened is not None else None

    def _end_turn(self, session: str, stop_reason: str, at: int | None = None) -> None:
        opened = self._open.pop(session, None)
        if opened is None:
            return
        end = at or time.time_ns()
        for span in opened.tools.values():
            span.end(end_time=end)
        opened.turn.set_attribute("kfd.stop_reason", stop_reason)
        opened.turn.end(end_time=end)


def _ns(ts: float) -> int:
    return int(ts * 1e9) if ts else time.time_ns()


def _expand(value: str) -> str:
    """``${VAR}`` in a header value, from the daemon's environment."""
    return _VARIABLE.sub(lambda m: os.environ.get(m.group(1), ""), value)
