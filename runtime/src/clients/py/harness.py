"""Shared by the client scripts here: read the test's plan, run named cases, print results.

A script reads its plan (the server's address, the inputs to send, ...) as JSON on stdin,
runs each case in isolation (one failing call does not hide the others), and prints one
line `RESULT <json>`: {case: {"ok": value} | {"error": "<exception type>: <message>"}}.
The vitest side (runtime/src/clients/python.ts) asserts on the values; nothing here
decides what is right.
"""

import asyncio
import json
import sys
import traceback

import numpy as np


def read_plan():
    return json.load(sys.stdin)


def describe(error):
    """An exception as one line, with the status the SDKs attach to it."""
    kind = type(error).__name__
    message = getattr(error, "message", None)
    status = getattr(error, "status", None)
    if callable(message) and callable(status):  # tritonclient's InferenceServerException
        return f"{kind}: [{status()}] {message()}"
    code = getattr(error, "code", None)
    details = getattr(error, "details", None)
    if callable(code) and callable(details):  # grpc.RpcError
        return f"{kind}: [{code()}] {details()}"
    return f"{kind}: {error}"


def jsonable(value):
    """numpy values as plain JSON; 64-bit integers as decimal strings (exact in JavaScript)."""
    if isinstance(value, np.ndarray):
        if value.dtype.kind in "iu" and value.dtype.itemsize == 8:
            return value.astype(str).tolist()
        if value.dtype.kind in "OSU":
            return jsonable(value.tolist())
        return value.tolist()
    if isinstance(value, (bytes, bytearray)):
        return value.decode("utf-8", errors="backslashreplace")
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > 2**53:
        return str(value)
    return value


def expect_error(call):
    """Runs call(); returns the error it raised, described; raises if it did not fail."""
    try:
        result = call()
    except Exception as error:  # noqa: BLE001 - the error is the result
        return describe(error)
    raise AssertionError(f"expected an error, got {result!r}")


async def expect_error_async(awaitable):
    try:
        result = await awaitable
    except Exception as error:  # noqa: BLE001
        return describe(error)
    raise AssertionError(f"expected an error, got {result!r}")


class Cases:
    def __init__(self):
        self.results = {}

    def _record(self, name, run):
        try:
            self.results[name] = {"ok": jsonable(run())}
        except Exception as error:  # noqa: BLE001 - reported to the test
            self.results[name] = {"error": describe(error), "trace": traceback.format_exc(limit=4)}

    def run(self, name, fn):
        self._record(name, fn)

    async def run_async(self, name, fn):
        try:
            self.results[name] = {"ok": jsonable(await fn())}
        except Exception as error:  # noqa: BLE001
            self.results[name] = {"error": describe(error), "trace": traceback.format_exc(limit=4)}

    def emit(self):
        sys.stdout.write("RESULT " + json.dumps(self.results) + "\n")
        sys.stdout.flush()


def run_main(main):
    """asyncio.run for scripts with async cases."""
    asyncio.run(main())
