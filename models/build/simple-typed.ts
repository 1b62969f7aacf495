/**
 * `simple`'s siblings from Triton's QA model set, which Triton's stock client
 * examples (grpc_explicit_byte_content_client.py, grpc_explicit_int8_content_client.py,
 * simple_http_string_infer_client.py, ...) expect. Test fixtures only: nothing
 * here is committed under models/ (runtime/src/testing/fixtures.ts builds them).
 *
 * - `simple_string`: INPUT0, INPUT1: BYTES [-1,16] holding decimal integers as
 *   text; OUTPUT0 = INPUT0 + INPUT1 and OUTPUT1 = INPUT0 - INPUT1, as decimal text.
 *   ONNX: Cast STRING→INT32 (ONNX Runtime parses with stoll; text that is not a
 *   number is refused), Add / Sub, Cast INT32→STRING.
 * - `simple_int8`: INPUT0, INPUT1: INT8 [-1,16]; OUTPUT0 = sum, OUTPUT1 =
 *   difference, INT8 (wrapping like Triton's int8 model: ONNX Runtime's CPU
 *   Add and Sub take int8 directly).
 */
import { model, node, valueInfo } from "./onnx.js";

const SHAPE = ["batch", 16];
/** ONNX TensorProto.DataType numbers for Cast's `to`. */
const INT32 = 6;
const STRING = 8;

export function buildSimpleString(): Uint8Array {
  return model(
    {
      name: "simple_string",
      nodes: [
        node("Cast", ["INPUT0"], ["A"], { to: INT32 }),
        node("Cast", ["INPUT1"], ["B"], { to: INT32 }),
        node("Add", ["A", "B"], ["SUM"]),
        node("Sub", ["A", "B"], ["DIFF"]),
        node("Cast", ["SUM"], ["OUTPUT0"], { to: STRING }),
        node("Cast", ["DIFF"], ["OUTPUT1"], { to: STRING }),
      ],
      inputs: [valueInfo("INPUT0", "STRING", SHAPE), valueInfo("INPUT1", "STRING", SHAPE)],
      outputs: [valueInfo("OUTPUT0", "STRING", SHAPE), valueInfo("OUTPUT1", "STRING", SHAPE)],
    },
    { docString: "Element-wise sum and difference of two BYTES [-1,16] tensors of decimal integers, as decimal text." },
  );
}

export function buildSimpleInt8(): Uint8Array {
  return model(
    {
      name: "simple_int8",
      nodes: [node("Add", ["INPUT0", "INPUT1"], ["OUTPUT0"]), node("Sub", ["INPUT0", "INPUT1"], ["OUTPUT1"])],
      inputs: [valueInfo("INPUT0", "INT8", SHAPE), valueInfo("INPUT1", "INT8", SHAPE)],
      outputs: [valueInfo("OUTPUT0", "INT8", SHAPE), valueInfo("OUTPUT1", "INT8", SHAPE)],
    },
    { docString: "Element-wise sum and difference of two INT8 [-1,16] tensors." },
  );
}

/**
 * A classifier's last layer for the classification extension: SCORES = Identity(INPUT),
 * FP32 [-1, classes], so a test knows every score (and so the top-N) from its input.
 */
export function buildScores(classes: number): Uint8Array {
  return model(
    {
      name: "scores",
      nodes: [node("Identity", ["INPUT"], ["SCORES"])],
      inputs: [valueInfo("INPUT", "FLOAT", ["batch", classes])],
      outputs: [valueInfo("SCORES", "FLOAT", ["batch", classes])],
    },
    { docString: `Identity over FP32 [-1,${classes}] class scores.` },
  );
}
