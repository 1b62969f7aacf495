"""tritonclient.http (sync, async_infer, aio) and plain HTTP against the server; see harness.py.

Plan (stdin JSON): url (host:port), a, b (16 INT32 each), i8a, i8b (16 INT8 each), sa, sb
(16 decimal strings each), int64, uint64 (decimal strings), scores (rows of 4 FP32 for
`classifier`), class_count, model_file (an ONNX file of `simple`), config (a Triton model
config JSON for it), load_name.
"""

import asyncio
import http.client
import json

import numpy as np
import tritonclient.http as httpclient
import tritonclient.http.aio as aioclient

from harness import Cases, expect_error, expect_error_async, read_plan

plan = read_plan()
url = plan["url"]
client = httpclient.InferenceServerClient(url=url, concurrency=2)
a = np.array([plan["a"]], dtype=np.int32)
b = np.array([plan["b"]], dtype=np.int32)
cases = Cases()


def pair(module, model, dtype, x, y, input_binary=(True, True)):
    inputs = [module.InferInput("INPUT0", list(x.shape), dtype), module.InferInput("INPUT1", list(y.shape), dtype)]
    inputs[0].set_data_from_numpy(x, binary_data=input_binary[0])
    inputs[1].set_data_from_numpy(y, binary_data=input_binary[1])
    return inputs


def outputs_of(result, names=("OUTPUT0", "OUTPUT1")):
    """Values and how each output travelled (binary section or JSON `data`)."""
    response = result.get_response()
    return {
        "values": {name: result.as_numpy(name) for name in names},
        "binary": {o["name"]: "binary_data_size" in o.get("parameters", {}) for o in response["outputs"]},
        "shapes": {o["name"]: o["shape"] for o in response["outputs"]},
    }


def health():
    return {
        "live": client.is_server_live(),
        "ready": client.is_server_ready(),
        "models": {m: client.is_model_ready(m) for m in ("simple", "simple_string", "simple_int8", "classifier")},
        "no_such_model": client.is_model_ready("no_such_model"),
    }


def infer_mixed():
    # INPUT0 as JSON, INPUT1 binary; OUTPUT0 asked as binary, OUTPUT1 as JSON; query parameters.
    outputs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=True), httpclient.InferRequestedOutput("OUTPUT1", binary_data=False)]
    result = client.infer("simple", pair(httpclient, "simple", "INT32", a, b, (False, True)), outputs=outputs, query_params={"test_1": 1, "test_2": 2})
    return outputs_of(result)


def infer_all_outputs():
    return outputs_of(client.infer("simple", pair(httpclient, "simple", "INT32", a, b, (False, True)), outputs=None))


def infer_string():
    x = np.array([plan["sa"]], dtype=np.object_)
    y = np.array([[s.encode() for s in plan["sb"]]], dtype=np.object_)
    outputs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=True), httpclient.InferRequestedOutput("OUTPUT1", binary_data=False)]
    return outputs_of(client.infer("simple_string", pair(httpclient, "simple_string", "BYTES", x, y, (True, False)), outputs=outputs))


def infer_int8():
    x = np.array([plan["i8a"]], dtype=np.int8)
    y = np.array([plan["i8b"]], dtype=np.int8)
    return outputs_of(client.infer("simple_int8", pair(httpclient, "simple_int8", "INT8", x, y)))


def async_infer():
    # Two requests in flight on a concurrency-2 client; AsyncInferResult.get_result() for each.
    pending = [
        client.async_infer("simple", pair(httpclient, "simple", "INT32", a, b), outputs=[httpclient.InferRequestedOutput("OUTPUT0"), httpclient.InferRequestedOutput("OUTPUT1")]),
        client.async_infer("simple", pair(httpclient, "simple", "INT32", b, a)),
    ]
    return [outputs_of(request.get_result(timeout=30)) for request in pending]


def identity_json(model, dtype, values):
    x = np.array([[int(v) for v in values]], dtype=dtype)
    inp = httpclient.InferInput("INPUT", list(x.shape), "INT64" if dtype == np.int64 else "UINT64")
    inp.set_data_from_numpy(x, binary_data=False)
    result = client.infer(model, [inp], outputs=[httpclient.InferRequestedOutput("OUTPUT", binary_data=False)])
    return outputs_of(result, ("OUTPUT",))


def load_model():
    with open(plan["model_file"], "rb") as f:
        onnx = f.read()
    name = plan["load_name"]
    client.load_model(name, config=plan["config"], files={"file:1/model.onnx": onnx})
    result = client.infer(name, pair(httpclient, name, "INT32", a, b))
    return {"ready": client.is_model_ready(name), "config": client.get_model_config(name), **outputs_of(result)}


def classify(binary):
    x = np.array(plan["scores"], dtype=np.float32)
    inp = httpclient.InferInput("INPUT", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    requested = httpclient.InferRequestedOutput("SCORES", binary_data=binary, class_count=plan["class_count"])
    result = client.infer("classifier", [inp], outputs=[requested])
    return outputs_of(result, ("SCORES",))


def post(path, body, headers):
    """Plain HTTP (http.client), answered with the status, the header and tritonclient's own decoding."""
    host, port = url.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        res = conn.getresponse()
        data = res.read()
        header_length = res.getheader("Inference-Header-Content-Length")
        answer = {"status": res.status, "inference_header_content_length": header_length}
        if res.status != 200:
            answer["body"] = data.decode("utf-8", errors="replace")
            return answer, None
        result = httpclient.InferenceServerClient.parse_response_body(data, header_length=int(header_length) if header_length is not None else None)
        return answer, result
    finally:
        conn.close()


def raw_binary():
    # Inference-Header-Content-Length: 0: the body is the one input's bytes, the shape comes from the model.
    x = np.array(plan["scores"], dtype=np.float32)
    answer, result = post("/v2/models/classifier/infer", x.tobytes(), {"Inference-Header-Content-Length": "0", "Content-Type": "application/octet-stream"})
    if result is not None:
        answer.update(outputs_of(result, ("SCORES",)))
    return answer


def binary_data_output(outputs):
    # A JSON request with the request-wide binary_data_output parameter (tritonclient refuses to set it itself).
    request = {
        "inputs": [
            {"name": "INPUT0", "datatype": "INT32", "shape": [1, 16], "data": plan["a"]},
            {"name": "INPUT1", "datatype": "INT32", "shape": [1, 16], "data": plan["b"]},
        ],
        "parameters": {"binary_data_output": True},
    }
    if outputs is not None:
        request["outputs"] = outputs
    answer, result = post("/v2/models/simple/infer", json.dumps(request).encode(), {"Content-Type": "application/json"})
    if result is not None:
        answer.update(outputs_of(result, [o["name"] for o in result.get_response()["outputs"]]))
    return answer


async def aio_cases():
    aio = aioclient.InferenceServerClient(url=url)
    try:
        async def infer():
            return outputs_of(await aio.infer("simple", pair(aioclient, "simple", "INT32", a, b, (False, True)), outputs=[aioclient.InferRequestedOutput("OUTPUT0", binary_data=True), aioclient.InferRequestedOutput("OUTPUT1", binary_data=False)]))

        async def gathered():
            results = await asyncio.gather(
                aio.infer("simple", pair(aioclient, "simple", "INT32", a, b)),
                aio.infer("simple", pair(aioclient, "simple", "INT32", b, a), outputs=None),
            )
            return [outputs_of(r) for r in results]

        async def health_and_metadata():
            return {
                "live": await aio.is_server_live(),
                "ready": await aio.is_model_ready("simple"),
                "metadata": await aio.get_model_metadata("simple"),
                "statistics_models": len((await aio.get_inference_statistics(model_name="simple"))["model_stats"]),
            }

        await cases.run_async("aio_infer", infer)
        await cases.run_async("aio_gather", gathered)
        await cases.run_async("aio_health_metadata", health_and_metadata)
        await cases.run_async("aio_unknown_model", lambda: expect_error_async(aio.infer("no_such_model", pair(aioclient, "simple", "INT32", a, b))))
    finally:
        await aio.close()


cases.run("health", health)
cases.run("server_metadata", client.get_server_metadata)
cases.run("model_metadata", lambda: client.get_model_metadata("simple"))
cases.run("model_config", lambda: client.get_model_config("simple"))
cases.run("statistics", lambda: client.get_inference_statistics(model_name="simple"))
cases.run("infer_mixed", infer_mixed)
cases.run("infer_all_outputs", infer_all_outputs)
cases.run("infer_string", infer_string)
cases.run("infer_int8", infer_int8)
cases.run("async_infer", async_infer)
cases.run("int64_json", lambda: identity_json("identity_int64", np.int64, plan["int64"]))
cases.run("uint64_json", lambda: identity_json("identity_uint64", np.uint64, plan["uint64"]))
cases.run("unknown_model_infer", lambda: expect_error(lambda: client.infer("no_such_model", pair(httpclient, "simple", "INT32", a, b))))
cases.run("unknown_model_metadata", lambda: expect_error(lambda: client.get_model_metadata("no_such_model")))
cases.run("load_model", load_model)
cases.run("class_count_binary", lambda: classify(True))
cases.run("class_count_json", lambda: classify(False))
cases.run("raw_binary", raw_binary)
cases.run("binary_data_output_all", lambda: binary_data_output(None))
cases.run("binary_data_output_listed", lambda: binary_data_output([{"name": "OUTPUT0"}, {"name": "OUTPUT1", "parameters": {"binary_data": True}}]))
asyncio.run(aio_cases())
client.close()
cases.emit()
