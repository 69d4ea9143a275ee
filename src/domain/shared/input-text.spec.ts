import { findBadText, MAX_INPUT_DEPTH, MAX_TEXT_LENGTH, textProblem } from './input-text';

describe('textProblem', () => {
  it.each([
    ['plain', null],
    ['a pair \u{1F600} is text', null],
    ['a NUL \u0000 here', 'NUL_CHARACTER'],
    ['a lone \ud800 half', 'LONE_SURROGATE'],
    ['\udc00\u0000 both: the NUL is named', 'NUL_CHARACTER'],
    ['x'.repeat(MAX_TEXT_LENGTH + 1), 'TOO_LONG'],
  ])('%p → %p', (s, problem) => {
    expect(textProblem(s)).toBe(problem);
  });
});

describe('findBadText', () => {
  it('passes clean values, however large', () => {
    const refs = Array.from({ length: 500 }, (_, i) => `wide@1:f${i}`);
    expect(findBadText({ input: { refs, at: new Date(), n: 1, ok: true } }, '')).toBeNull();
  });

  it('names the path to the first bad string, through arrays and objects', () => {
    const args = { input: { records: [{ entityKey: 'ok' }, { fields: { x: 'bad\u0000' } }] } };
    expect(findBadText(args, '')).toEqual({
      path: 'input.records[1].fields.x',
      problem: 'NUL_CHARACTER',
    });
    expect(findBadText(['a', ['b', '\ud800']], 'keys')).toEqual({
      path: 'keys[1][1]',
      problem: 'LONE_SURROGATE',
    });
  });

  it('names an object whose key is bad', () => {
    expect(findBadText({ input: { fields: { 'x\u0000': 1 } } }, '')).toEqual({
      path: 'input.fields (a key)',
      problem: 'NUL_CHARACTER',
    });
  });

  it('refuses nesting past the limit', () => {
    let deep: unknown = 'x';
    for (let i = 0; i < MAX_INPUT_DEPTH + 1; i++) deep = [deep];
    expect(findBadText(deep, 'v')?.problem).toBe('TOO_DEEP');
  });
});
