"""Running schemathesis over a OneMap /openapi document: every operation fired at a live server,
collecting whatever answers with a 5xx.

The document is read exactly as served: it refers to nothing outside itself (gis.openapi), so no
stand-ins are needed to read it offline.
"""

from __future__ import annotations

import json

import httpx
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode


def server_errors(operations, mode: GenerationMode, base_url: str, examples: int,
                  headers: dict | None = None, timeout: float = 20) -> tuple[int, list[str]]:
    """(calls made, one line per 5xx or dropped connection) for `examples` cases of each operation,
    sent with `headers` on top of what schemathesis generates."""
    failures: list[str] = []
    calls = [0]
    with httpx.Client(base_url=base_url, timeout=timeout) as http:
        for operation in operations:
            try:
                strategy = operation.as_strategy(generation_mode=mode)
            except Exception as err:  # an operation schemathesis cannot generate for in this mode
                if mode is GenerationMode.NEGATIVE:
                    continue
                raise AssertionError(f"{operation.label}: {err}") from err

            @settings(max_examples=examples, deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=strategy)
            def run(case):
                kwargs = case.as_transport_kwargs(base_url=base_url)
                calls[0] += 1
                sent = {**(_plain(kwargs.get("headers")) or {}), **(headers or {})}
                request = dict(method=kwargs["method"], url=kwargs["url"], params=kwargs.get("params"),
                               headers=sent or None, content=_body(kwargs))
                try:
                    try:
                        response = http.request(**request)
                    except (httpx.ReadError, httpx.RemoteProtocolError):
                        # a pooled connection the server closed after an earlier 400: once more, afresh
                        with httpx.Client(base_url=base_url, timeout=timeout) as fresh:
                            response = fresh.request(**request)
                except httpx.TimeoutException:
                    failures.append(f"{operation.label}: timed out for {kwargs.get('params')}")
                    return
                except (httpx.ReadError, httpx.RemoteProtocolError):
                    failures.append(f"{operation.label}: the server dropped the connection for {kwargs.get('params')} {kwargs.get('headers')}")
                    return
                except (httpx.InvalidURL, httpx.LocalProtocolError, UnicodeEncodeError, ValueError):
                    return  # the client cannot send it: nothing reached the server
                if response.status_code >= 500:
                    failures.append(f"{operation.label} {kwargs.get('params')} -> {response.status_code} {response.text[:200]}")

            try:
                run()
            except Unsatisfiable:  # nothing to break in this operation (negative mode, no parameters)
                continue
    return calls[0], failures


def _plain(headers):
    if not headers:
        return None
    return {str(k): str(v) for k, v in headers.items() if k.lower() not in ("content-length", "host")}


def _body(kwargs):
    if "json" in kwargs:
        return json.dumps(kwargs["json"]).encode()
    data = kwargs.get("data") or kwargs.get("content")
    if isinstance(data, str):
        return data.encode()
    return data if isinstance(data, bytes) else None
