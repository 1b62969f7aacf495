"""tritonclient.grpc (sync, async_infer with a callback, aio) and explicit typed contents built
with tritonclient.grpc's own service_pb2 / service_pb2_grpc; see harness.py.

Plan (stdin JSON): as tritonclient_http.py's (url is host:port: gRPC shares the REST port).
"""

import asyncio
import threading

import grpc
import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as aioclient
from tritonclient import utils
from tritonclient.grpc import service_pb2, service_pb2_grpc

from harness import Cases, expect_error, expect_error_async, read_plan

plan = read_plan()
url = plan["url"]
client = grpcclient.InferenceServerClient(url=url)
a = np.array([plan["a"]], dtype=np.int32)
b = np.array([plan["b"]], dtype=np.int32)
cases = Cases()


def pair(module, dtype, x, y):
    inputs = [module.InferInput("INPUT0", list(x.shape), dtype), module.InferInput("INPUT1", list(y.shape), dtype)]
    inputs[0].set_data_from_numpy(x)
    inputs[1].set_data_from_numpy(y)
    return inputs


def outputs_of(result, names=("OUTPUT0", "OUTPUT1")):
    response = result.get_response(as_json=True)
    return {
        "values": {name: result.as_numpy(name) for name in names},
        "shapes": {o["name"]: [int(d) for d in o["shape"]] for o in response["outputs"]},
        "model_name": response.get("model_name"),
    }


def health():
    return {
        "live": client.is_server_live(headers={"test": "1"}),
        "ready": client.is_server_ready(),
        "models": {m: client.is_model_ready(m) for m in ("simple", "simple_string", "simple_int8", "classifier")},
    }


def infer():
    requested = [grpcclient.InferRequestedOutput("OUTPUT0"), grpcclient.InferRequestedOutput("OUTPUT1")]
    return outputs_of(client.infer("simple", pair(grpcclient, "INT32", a, b), outputs=requested, headers={"test": "1"}))


def infer_string():
    x = np.array([plan["sa"]], dtype=np.object_)
    y = np.array([[s.encode() for s in plan["sb"]]], dtype=np.object_)
    return outputs_of(client.infer("simple_string", pair(grpcclient, "BYTES", x, y)))


def infer_int8():
    x = np.array([plan["i8a"]], dtype=np.int8)
    y = np.array([plan["i8b"]], dtype=np.int8)
    return outputs_of(client.infer("simple_int8", pair(grpcclient, "INT8", x, y)))


def async_infer():
    done = threading.Event()
    answers = []

    def callback(result, error):
        answers.append(error if error is not None else result)
        done.set()

    client.async_infer("simple", pair(grpcclient, "INT32", a, b), callback, outputs=[grpcclient.InferRequestedOutput("OUTPUT0"), grpcclient.InferRequestedOutput("OUTPUT1")])
    if not done.wait(30):
        raise TimeoutError("async_infer's callback was not called within 30 s")
    if isinstance(answers[0], Exception):
        raise answers[0]
    return outputs_of(answers[0])


def int64():
    x = np.array([[int(v) for v in plan["int64"]]], dtype=np.int64)
    inp = grpcclient.InferInput("INPUT", list(x.shape), "INT64")
    inp.set_data_from_numpy(x)
    return outputs_of(client.infer("identity_int64", [inp]), ("OUTPUT",))


def load_model():
    with open(plan["model_file"], "rb") as f:
        onnx = f.read()
    name = plan["load_name"]
    client.load_model(name, config=plan["config"], files={"file:1/model.onnx": onnx})
    result = client.infer(name, pair(grpcclient, "INT32", a, b))
    return {"ready": client.is_model_ready(name), "config": client.get_model_config(name, as_json=True), **outputs_of(result)}


def class_count():
    x = np.array(plan["scores"], dtype=np.float32)
    inp = grpcclient.InferInput("INPUT", list(x.shape), "FP32")
    inp.set_data_from_numpy(x)
    result = client.infer("classifier", [inp], outputs=[grpcclient.InferRequestedOutput("SCORES", class_count=plan["class_count"])])
    return outputs_of(result, ("SCORES",))


# Explicit typed contents (InferTensorContents), answered in raw_output_contents.
stub = service_pb2_grpc.GRPCInferenceServiceStub(grpc.insecure_channel(url))


def explicit_request(model, datatype, field, x, y):
    request = service_pb2.ModelInferRequest(model_name=model, model_version="")
    for name, values in (("INPUT0", x), ("INPUT1", y)):
        tensor = service_pb2.ModelInferRequest.InferInputTensor(name=name, datatype=datatype, shape=[1, len(values)])
        getattr(tensor.contents, field).extend(values)
        request.inputs.append(tensor)
    for name in ("OUTPUT0", "OUTPUT1"):
        request.outputs.append(service_pb2.ModelInferRequest.InferRequestedOutputTensor(name=name))
    return request


def decode(response, dtype):
    """Each output of a ModelInferResponse, from raw_output_contents (or typed contents)."""
    outputs = {}
    for index, output in enumerate(response.outputs):
        shape = list(output.shape)
        if index < len(response.raw_output_contents):
            raw = response.raw_output_contents[index]
            values = utils.deserialize_bytes_tensor(raw) if output.datatype == "BYTES" else np.frombuffer(raw, dtype=dtype)
        else:
            values = np.array(list(output.contents.bytes_contents if output.datatype == "BYTES" else output.contents.int_contents), dtype=dtype)
        outputs[output.name] = {"datatype": output.datatype, "shape": shape, "values": values.reshape(shape)}
    return outputs


def explicit_int():
    return decode(stub.ModelInfer(explicit_request("simple", "INT32", "int_contents", plan["a"], plan["b"])), np.int32)


def explicit_bytes():
    x = [s.encode() for s in plan["sa"]]
    y = [s.encode() for s in plan["sb"]]
    return decode(stub.ModelInfer(explicit_request("simple_string", "BYTES", "bytes_contents", x, y)), np.object_)


def explicit_int8():
    # INT8 travels in int_contents (the protocol has no narrower field).
    return decode(stub.ModelInfer(explicit_request("simple_int8", "INT8", "int_contents", plan["i8a"], plan["i8b"])), np.int8)


def explicit_mixed():
    # INPUT0 given both as raw_input_contents and in contents: refused.
    request = explicit_request("simple", "INT32", "int_contents", plan["a"], plan["b"])
    request.raw_input_contents.append(np.array(plan["a"][:8], dtype=np.int32).tobytes())
    del request.inputs[0].contents.int_contents[:8]
    return expect_error(lambda: stub.ModelInfer(request))


def explicit_wrong_version():
    request = explicit_request("simple_int8", "INT8", "int_contents", plan["i8a"], plan["i8b"])
    request.model_version = "wrong_specification"
    return expect_error(lambda: stub.ModelInfer(request))


async def aio_cases():
    aio = aioclient.InferenceServerClient(url=url)
    try:
        async def infer_once():
            return outputs_of(await aio.infer("simple", pair(aioclient, "INT32", a, b), outputs=[aioclient.InferRequestedOutput("OUTPUT0"), aioclient.InferRequestedOutput("OUTPUT1")], headers={"test": "1"}))

        async def gathered():
            results = await asyncio.gather(aio.infer("simple", pair(aioclient, "INT32", a, b)), aio.infer("simple", pair(aioclient, "INT32", b, a)))
            return [outputs_of(r) for r in results]

        async def health_and_metadata():
            return {
                "live": await aio.is_server_live(),
                "ready": await aio.is_model_ready("simple"),
                "metadata": await aio.get_model_metadata("simple", as_json=True),
                "statistics_models": len((await aio.get_inference_statistics(model_name="simple", as_json=True))["model_stats"]),
            }

        await cases.run_async("aio_infer", infer_once)
        await cases.run_async("aio_gather", gathered)
        await cases.run_async("aio_health_metadata", health_and_metadata)
        await cases.run_async("aio_unknown_model", lambda: expect_error_async(aio.infer("no_such_model", pair(aioclient, "INT32", a, b))))
    finally:
        await aio.close()


cases.run("health", health)
cases.run("server_metadata", lambda: client.get_server_metadata(as_json=True))
cases.run("model_metadata", lambda: client.get_model_metadata("simple", as_json=True))
cases.run("model_config", lambda: client.get_model_config("simple", as_json=True))
cases.run("statistics", lambda: client.get_inference_statistics(model_name="simple", as_json=True))
cases.run("infer", infer)
cases.run("infer_all_outputs", lambda: outputs_of(client.infer("simple", pair(grpcclient, "INT32", a, b))))
cases.run("infer_string", infer_string)
cases.run("infer_int8", infer_int8)
cases.run("async_infer", async_infer)
cases.run("int64", int64)
cases.run("unknown_model_infer", lambda: expect_error(lambda: client.infer("no_such_model", pair(grpcclient, "INT32", a, b))))
cases.run("unknown_model_metadata", lambda: expect_error(lambda: client.get_model_metadata("no_such_model")))
cases.run("load_model", load_model)
cases.run("class_count", class_count)
cases.run("explicit_int", explicit_int)
cases.run("explicit_bytes", explicit_bytes)
cases.run("explicit_int8", explicit_int8)
cases.run("explicit_mixed_contents", explicit_mixed)
cases.run("explicit_wrong_version", explicit_wrong_version)
asyncio.run(aio_cases())
client.close()
cases.emit()
