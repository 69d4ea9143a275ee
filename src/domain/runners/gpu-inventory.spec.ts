import { parseDeclaredGpus, parseNvidiaSmi } from './gpu-inventory';

describe('GPU inventory', () => {
  it('parses a declared pool', () => {
    expect(parseDeclaredGpus('0,1, 2,3')?.map((g) => g.index)).toEqual([0, 1, 2, 3]);
  });

  it.each(['', 'a,b', '0,0', '1,-2'])('rejects the declared pool %p', (v) => {
    expect(parseDeclaredGpus(v)).toBeNull();
  });

  it('parses nvidia-smi CSV output', () => {
    const out = '0, NVIDIA H100 80GB HBM3, 81559\n1, NVIDIA H100 80GB HBM3, 81559\n';
    expect(parseNvidiaSmi(out)).toEqual([
      { index: 0, name: 'NVIDIA H100 80GB HBM3', memoryMb: 81559 },
      { index: 1, name: 'NVIDIA H100 80GB HBM3', memoryMb: 81559 },
    ]);
  });

  it('parses what nvidia-smi printed on a real H200 host (npm run gpu-check, 2026-11-29)', () => {
    expect(parseNvidiaSmi('0, NVIDIA H200, 143771\n')).toEqual([
      { index: 0, name: 'NVIDIA H200', memoryMb: 143771 },
    ]);
  });
});
