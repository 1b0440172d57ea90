"""OpenTelemetry export against a local OTLP/HTTP receiver on 127.0.0.1 that
decodes the protobuf payloads (opentelemetry-proto): spans for the turn, its
model requests and its tool call, nested; metrics for tokens, cost and latency."""

from __future__ import annotations

import gzip
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from kfd.testing import Reply, ScriptedModelServer, ScriptedToolCall, ScriptedUsage
from kfd.testing.events import collect_until, turn_completed


class Receiver:
    """An OTLP/HTTP endpoint that keeps what it is sent."""

    def __init__(self) -> None:
        self.spans: list = []
        self.metrics: list = []
        self.got_spans = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                if self.headers.get("content-encoding") == "gzip":
                    body = gzip.decompress(body)
                if self.path == "/v1/traces":
                    request = ExportTraceServiceRequest.FromString(body)
                    for resource in request.resource_spans:
                        for scope in resource.scope_spans:
                            owner.spans.extend(scope.spans)
                    owner.got_spans.set()
                elif self.path == "/v1/metrics":
                    request = ExportMetricsServiceRequest.FromString(body)
                    for resource in request.resource_metrics:
                        for scope in resource.scope_metrics:
                            owner.metrics.extend(scope.metrics)
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    yield found
    found.close()


async def test_turns_model_requests_and_tool_calls_are_exported_as_nested_spans_and_metrics(
    make_daemon, model_server: ScriptedModelServer, workspace: Path, receiver: Receiver
) -> None:
    daemon = make_daemon(
        f'[telemetry]\nenabled = true\nendpoint = "{receiver.url}"\nexport_interval_s = 60\n'
        '[models."scripted-model"]\ninput = 1.0\noutput = 2.0\n'
    )
    usage = ScriptedUsage(input_tokens=1000, output_tokens=100)
    model_server.add(
        Reply(tool_calls=[ScriptedToolCall("read", {"path": "README.md"})], usage=usage),
        Reply(text="a demo", usage=usage),
    )
    async with await daemon.client() as client:
        info = await client.create_session(workspace, mode="auto")
        async with await client.attach(info.id) as view:
            await client.send(info.id, "read it")
            await collect_until(view, turn_completed)
    assert daemon.stop() == 0  # shutting down sends what is left

    by_name: dict[str, list] = {}
    for span in receiver.spans:
        by_name.setdefault(span.name, []).append(span)
    [turn] = by_name["kfd.turn"]
    requests = by_name["kfd.model_request"]
    [tool] = by_name["kfd.tool"]
    assert len(requests) == 2
    for child in (*requests, tool):
        assert child.trace_id == turn.trace_id
        assert child.parent_span_id == turn.span_id
        assert turn.start_time_unix_nano <= child.start_time_unix_nano
        assert child.end_time_unix_nano <= turn.end_time_unix_nano
    attributes = {a.key: a.value for a in requests[0].attributes}
    assert attributes["kfd.session"].string_value == info.id
    assert attributes["kfd.input_tokens"].int_value == 1000
    assert attributes["kfd.state"].string_value == "completed"
    names = {metric.name for metric in receiver.metrics}
    assert {"kfd.tokens", "kfd.cost", "kfd.model.latency", "kfd.tool.duration"} <= names
    tokens = next(m for m in receiver.metrics if m.name == "kfd.tokens")
    total = sum(point.as_int for point in tokens.sum.data_points)
    assert total == 2 * (1000 + 100)
