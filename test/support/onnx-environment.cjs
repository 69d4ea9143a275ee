// onnxruntime-node checks tensor data with `instanceof Float32Array` against the Node realm,
// while jest runs test code in a sandbox realm with typed arrays of its own. Test files that
// run ONNX models use this environment, which hands the sandbox Node's typed arrays.
// eslint-disable-next-line @typescript-eslint/no-require-imports -- a CommonJS file by necessity
const { TestEnvironment } = require('jest-environment-node');

class OnnxEnvironment extends TestEnvironment {
  constructor(config, context) {
    super(config, context);
    for (const name of [
      'Float32Array',
      'Float64Array',
      'Int32Array',
      'BigInt64Array',
      'Uint8Array',
    ])
      this.global[name] = globalThis[name];
  }
}

module.exports = OnnxEnvironment;
