import { type DataSource } from 'typeorm';
import { type Leases } from '../../domain/shared/lease';

interface Row {
  name: string;
  holder: string;
  token: string;
  expires_at: Date;
}

/**
 * Leases as rows of PostgreSQL, the store whose state the leased loops change, on the
 * database's clock (every process agrees on expiry whatever its own clock says). One
 * statement takes, extends or refuses a lease, so two processes can never both hold it.
 */
export class SqlLeases implements Leases {
  constructor(private readonly ds: DataSource) {}

  async acquire(name: string, holder: string, ttlMs: number): Promise<number | null> {
    const rows: Row[] = await this.ds.query(
      `INSERT INTO lease (name, holder, token, expires_at)
       VALUES ($1, $2, 1, clock_timestamp() + $3 * interval '1 millisecond')
       ON CONFLICT (name) DO UPDATE
         SET holder = EXCLUDED.holder,
             token = lease.token + CASE WHEN lease.holder = EXCLUDED.holder THEN 0 ELSE 1 END,
             expires_at = EXCLUDED.expires_at
         WHERE lease.holder = EXCLUDED.holder OR lease.expires_at < clock_timestamp()
       RETURNING token`,
      [name, holder, ttlMs],
    );
    return rows[0] ? Number(rows[0].token) : null;
  }

  async release(name: string, holder: string): Promise<void> {
    await this.ds.query(
      `UPDATE lease SET expires_at = clock_timestamp() WHERE name = $1 AND holder = $2`,
      [name, holder],
    );
  }

  async holders(): Promise<{ name: string; holder: string; token: number; expiresAt: Date }[]> {
    const rows: Row[] = await this.ds.query(
      `SELECT * FROM lease WHERE expires_at > clock_timestamp() ORDER BY name`,
    );
    return rows.map((r) => ({
      name: r.name,
      holder: r.holder,
      token: Number(r.token),
      expiresAt: r.expires_at,
    }));
  }
}
