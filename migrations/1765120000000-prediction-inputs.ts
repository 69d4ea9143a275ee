import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * The prediction log keeps each row's inputs as the model was given them (ADR 0037):
 * `inputs_f32`, float32 values, big-endian (as `float4send` writes them), NaN where a feature
 * had no value. A 500-feature row was a 10 KB jsonb document that PostgreSQL parsed into
 * numerics on every write; it is now 2,000 bytes. `prediction_inputs(inputs_f32)` reads them
 * back in SQL as a float8[] (exact; NULL for NaN).
 *
 * The jsonb column stays, always NULL, for processes of the previous release still running
 * during an upgrade: a row they write with jsonb inputs is packed into `inputs_f32` by a
 * trigger as it is inserted. A later release drops both.
 */
export class PredictionInputs1765120000000 implements MigrationInterface {
  name = 'PredictionInputs1765120000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE FUNCTION prediction_inputs(b bytea) RETURNS float8[]
      LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE AS $$
        SELECT coalesce(array_agg(CASE
            WHEN e = 255 THEN CASE WHEN m = 0 THEN sgn * 'Infinity'::float8 END
            WHEN e = 0 THEN sgn * m::float8 * 2::float8 ^ -149
            ELSE sgn * (m + 8388608)::float8 * 2::float8 ^ (e - 150) END ORDER BY i), '{}')
        FROM (SELECT i, (1 - 2 * ((w >> 31) & 1))::float8 AS sgn, (w >> 23) & 255 AS e, w & 8388607 AS m
              FROM (SELECT i, (get_byte(b, 4 * i)::bigint << 24) | (get_byte(b, 4 * i + 1) << 16)
                             | (get_byte(b, 4 * i + 2) << 8) | get_byte(b, 4 * i + 3) AS w
                    FROM generate_series(0, length(b) / 4 - 1) AS i) AS words) AS parts
      $$`);
    // jsonb numbers as the float32 a model is given: past its range ±Infinity, below its
    // smallest (half of 2^-149 and less) a zero, anything else NaN.
    await q.query(`
      CREATE FUNCTION prediction_inputs_pack(j jsonb) RETURNS bytea
      LANGUAGE sql IMMUTABLE STRICT AS $$
        SELECT coalesce(string_agg(float4send(CASE
            WHEN jsonb_typeof(v) <> 'number' THEN 'NaN'::float4
            WHEN abs(v::text::float8) >= 3.4028235677973366e38 THEN (sign(v::text::float8) * 'Infinity'::float8)::float4
            WHEN abs(v::text::float8) <= 7.006492321624085e-46 THEN 0::float4
            ELSE v::text::float8::float4 END), ''::bytea ORDER BY i), ''::bytea)
        FROM jsonb_array_elements(j) WITH ORDINALITY AS t(v, i)
      $$`);
    await q.query(`ALTER TABLE prediction_log ADD COLUMN inputs_f32 bytea NULL`);
    await q.query(`ALTER TABLE prediction_log ALTER COLUMN inputs DROP NOT NULL`);
    await q.query(
      `UPDATE prediction_log SET inputs_f32 = prediction_inputs_pack(inputs), inputs = NULL`,
    );
    await q.query(`ALTER TABLE prediction_log ALTER COLUMN inputs_f32 SET NOT NULL`);
    await q.query(`
      CREATE FUNCTION prediction_log_pack_inputs() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        NEW.inputs_f32 := prediction_inputs_pack(NEW.inputs);
        NEW.inputs := NULL;
        RETURN NEW;
      END $$`);
    await q.query(`
      CREATE TRIGGER prediction_log_pack_inputs BEFORE INSERT ON prediction_log
      FOR EACH ROW WHEN (NEW.inputs IS NOT NULL) EXECUTE FUNCTION prediction_log_pack_inputs()`);
    // Also for rows applied by replication (session_replication_role = replica): a row is
    // only valid packed, wherever it comes from.
    await q.query(`ALTER TABLE prediction_log ENABLE ALWAYS TRIGGER prediction_log_pack_inputs`);
    // A row stays in the table up to a page (about 1,900 features) instead of being
    // compressed and moved out past 2 KB (about 500): half the database's CPU a wide row.
    await q.query(`ALTER TABLE prediction_log SET (toast_tuple_target = 8160)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE prediction_log RESET (toast_tuple_target)`);
    await q.query(`DROP TRIGGER prediction_log_pack_inputs ON prediction_log`);
    await q.query(`DROP FUNCTION prediction_log_pack_inputs()`);
    // JSON has no infinities: as before, only finite numbers and null.
    await q.query(`
      UPDATE prediction_log SET inputs = (
        SELECT coalesce(jsonb_agg(CASE WHEN x IN ('Infinity', '-Infinity') THEN NULL ELSE to_jsonb(x) END
                                  ORDER BY i), '[]'::jsonb)
        FROM unnest(prediction_inputs(inputs_f32)) WITH ORDINALITY AS u(x, i))`);
    await q.query(`ALTER TABLE prediction_log ALTER COLUMN inputs SET NOT NULL`);
    await q.query(`ALTER TABLE prediction_log DROP COLUMN inputs_f32`);
    await q.query(`DROP FUNCTION prediction_inputs_pack(jsonb)`);
    await q.query(`DROP FUNCTION prediction_inputs(bytea)`);
  }
}
