"""KServe's Python SDK against the server: InferenceRESTClient (V1 and V2) and
InferenceGRPCClient, plus ModelMetadata / ServerMetadata through KServe's own generated
gRPC stubs (the SDK's clients have no metadata call); see harness.py.

A separate process from the tritonclient scripts: kserve and tritonclient.grpc register the
same inference.* protobuf messages and cannot be imported together.

Plan (stdin JSON): as tritonclient_http.py's.
"""

import asyncio

import grpc
import numpy as np
from kserve import InferenceGRPCClient, InferenceRESTClient, InferInput, InferRequest, RESTConfig
from kserve.protocol.infer_type import RequestedOutput
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as pb_grpc

from harness import Cases, expect_error_async, read_plan

plan = read_plan()
host_port = plan["url"]
base_url = f"http://{host_port}"
cases = Cases()


def simple_request(binary, model="simple"):
    x = np.array([plan["a"]], dtype=np.int32)
    y = np.array([plan["b"]], dtype=np.int32)
    inputs = [InferInput("INPUT0", list(x.shape), "INT32"), InferInput("INPUT1", list(y.shape), "INT32")]
    inputs[0].set_data_from_numpy(x, binary_data=binary)
    inputs[1].set_data_from_numpy(y, binary_data=binary)
    outputs = [RequestedOutput("OUTPUT0", {"binary_data": binary}), RequestedOutput("OUTPUT1", {"binary_data": binary})] if binary else None
    return InferRequest(model_name=model, infer_inputs=inputs, request_outputs=outputs)


def outputs_of(response):
    return {
        "model_name": response.model_name,
        "values": {o.name: o.as_numpy() for o in response.outputs},
        "datatypes": {o.name: o.datatype for o in response.outputs},
        "shapes": {o.name: list(o.shape) for o in response.outputs},
    }


def identity_request(model, dtype, datatype, values, binary):
    x = np.array([[int(v) for v in values]], dtype=dtype)
    inp = InferInput("INPUT", list(x.shape), datatype)
    inp.set_data_from_numpy(x, binary_data=binary)
    return InferRequest(model_name=model, infer_inputs=[inp])


async def v1_cases():
    client = InferenceRESTClient(RESTConfig(protocol="v1", retries=0, timeout=30))
    try:
        await cases.run_async("v1_server_live", lambda: client.is_server_live(base_url))
        await cases.run_async("v1_model_ready", lambda: client.is_model_ready(base_url, "classifier"))
        await cases.run_async("v1_predict", lambda: client.infer(base_url, {"instances": plan["scores"]}, model_name="classifier"))
        await cases.run_async("v1_unknown_model", lambda: expect_error_async(client.infer(base_url, {"instances": plan["scores"]}, model_name="no_such_model")))
    finally:
        await client.close()


async def v2_cases():
    client = InferenceRESTClient(RESTConfig(protocol="v2", retries=0, timeout=30))
    try:
        async def health():
            return {
                "live": await client.is_server_live(base_url),
                "ready": await client.is_server_ready(base_url),
                "models": {m: await client.is_model_ready(base_url, m) for m in ("simple", "simple_string", "simple_int8", "classifier")},
                "no_such_model": await client.is_model_ready(base_url, "no_such_model"),
            }

        async def infer(binary):
            return outputs_of(await client.infer(base_url, simple_request(binary), model_name="simple"))

        async def int64_json(model, dtype, datatype, values):
            return outputs_of(await client.infer(base_url, identity_request(model, dtype, datatype, values, False), model_name=model))

        await cases.run_async("v2_health", health)
        await cases.run_async("v2_infer_json", lambda: infer(False))
        await cases.run_async("v2_infer_binary", lambda: infer(True))
        await cases.run_async("v2_int64_json", lambda: int64_json("identity_int64", np.int64, "INT64", plan["int64"]))
        await cases.run_async("v2_uint64_json", lambda: int64_json("identity_uint64", np.uint64, "UINT64", plan["uint64"]))
        await cases.run_async("v2_unknown_model", lambda: expect_error_async(client.infer(base_url, simple_request(False, "no_such_model"), model_name="no_such_model")))
    finally:
        await client.close()


async def grpc_cases():
    client = InferenceGRPCClient(host_port, retries=0, timeout=30)
    try:
        async def health():
            return {
                "live": await client.is_server_live(),
                "ready": await client.is_server_ready(),
                "models": {m: await client.is_model_ready(m) for m in ("simple", "simple_string", "simple_int8", "classifier")},
            }

        async def infer():
            return outputs_of(await client.infer(simple_request(False)))

        async def int64():
            return outputs_of(await client.infer(identity_request("identity_int64", np.int64, "INT64", plan["int64"], False)))

        await cases.run_async("grpc_health", health)
        await cases.run_async("grpc_infer", infer)
        await cases.run_async("grpc_int64", int64)
        await cases.run_async("grpc_unknown_model", lambda: expect_error_async(client.infer(simple_request(False, "no_such_model"))))
    finally:
        await client.close()

    # KServe's generated stubs for what the SDK's clients do not wrap.
    async with grpc.aio.insecure_channel(host_port) as channel:
        stub = pb_grpc.GRPCInferenceServiceStub(channel)

        async def model_metadata():
            m = await stub.ModelMetadata(pb.ModelMetadataRequest(name="simple"), timeout=30)
            tensors = lambda ts: [{"name": t.name, "datatype": t.datatype, "shape": list(t.shape)} for t in ts]
            return {"name": m.name, "versions": list(m.versions), "platform": m.platform, "inputs": tensors(m.inputs), "outputs": tensors(m.outputs)}

        async def server_metadata():
            m = await stub.ServerMetadata(pb.ServerMetadataRequest(), timeout=30)
            return {"name": m.name, "version": m.version, "extensions": list(m.extensions)}

        await cases.run_async("grpc_model_metadata", model_metadata)
        await cases.run_async("grpc_server_metadata", server_metadata)
        await cases.run_async("grpc_unknown_model_metadata", lambda: expect_error_async(stub.ModelMetadata(pb.ModelMetadataRequest(name="no_such_model"), timeout=30)))


async def main():
    await v1_cases()
    await v2_cases()
    await grpc_cases()


asyncio.run(main())
cases.emit()
