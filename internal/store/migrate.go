package store

import (
	"cmp"
	"context"
	"database/sql"
	"fmt"
	"io/fs"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
)

// migration is one embedded NNNN_name.sql file. Later tables (OAuth clients,
// consents, sealed IdP tokens) are one more file per dialect directory.
type migration struct {
	version int64
	name    string
	sql     string
}

func loadMigrations(d dialect) ([]migration, error) {
	dir, err := fs.Sub(migrationFiles, d.migrationDir)
	if err != nil {
		return nil, fmt.Errorf("migrations %s: %w", d.migrationDir, err)
	}
	names, err := fs.Glob(dir, "*.sql")
	if err != nil {
		return nil, fmt.Errorf("migrations %s: %w", d.migrationDir, err)
	}
	var out []migration
	for _, n := range names {
		num, _, ok := strings.Cut(n, "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s/%s: name must be NNNN_description.sql", d.migrationDir, n)
		}
		body, err := fs.ReadFile(dir, n)
		if err != nil {
			return nil, fmt.Errorf("migration %s/%s: %w", d.migrationDir, n, err)
		}
		out = append(out, migration{version: v, name: n, sql: string(body)})
	}
	slices.SortFunc(out, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migration %s/%s: version %d used twice", d.migrationDir, out[i].name, out[i].version)
		}
	}
	return out, nil
}

// migrate applies the pending migrations in one transaction: all or none.
// On PostgreSQL an advisory transaction lock makes concurrent starts of
// several replicas take turns; the later ones find nothing left to do. On
// SQLite the transaction is BEGIN IMMEDIATE, which is exclusive for writers.
func migrate(ctx context.Context, db *sql.DB, d dialect) error {
	return migrateTo(ctx, db, d, math.MaxInt64)
}

// migrateTo is migrate up to and including version last, which lets a test
// build a database as an older release left it.
func migrateTo(ctx context.Context, db *sql.DB, d dialect, last int64) error {
	migs, err := loadMigrations(d)
	if err != nil {
		return err
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate: begin: %w", err)
	}
	defer func() { _ = tx.Rollback() }()
	if d.migrationLock != "" {
		if _, err := tx.ExecContext(ctx, d.migrationLock); err != nil {
			return fmt.Errorf("migrate: take migration lock: %w", err)
		}
	}
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    BIGINT PRIMARY KEY,
		name       TEXT NOT NULL,
		applied_us BIGINT NOT NULL)`); err != nil {
		return fmt.Errorf("migrate: create schema_migrations: %w", err)
	}
	applied := map[int64]bool{}
	rows, err := tx.QueryContext(ctx, "SELECT version FROM schema_migrations")
	if err != nil {
		return fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	for rows.Next() {
		var v int64
		if err := rows.Scan(&v); err != nil {
			_ = rows.Close()
			return fmt.Errorf("migrate: read schema_migrations: %w", err)
		}
		applied[v] = true
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("migrate: read schema_migrations: %w", err)
	}
	known := map[int64]bool{}
	for _, m := range migs {
		known[m.version] = true
	}
	for v := range applied {
		if !known[v] {
			// Fail closed: an older binary must not run against a schema
			// it does not understand.
			return fmt.Errorf("migrate: database has schema version %d, unknown to this mcpgw (newer release?)", v)
		}
	}
	for _, m := range migs {
		if applied[m.version] || m.version > last {
			continue
		}
		if _, err := tx.ExecContext(ctx, m.sql); err != nil {
			return fmt.Errorf("migrate: apply %s: %w", m.name, err)
		}
		if _, err := tx.ExecContext(ctx,
			"INSERT INTO schema_migrations (version, name, applied_us) VALUES ($1, $2, $3)",
			m.version, m.name, time.Now().UnixMicro()); err != nil {
			return fmt.Errorf("migrate: record %s: %w", m.name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate: commit: %w", err)
	}
	return nil
}
