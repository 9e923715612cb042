package store

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/config"
	"github.com/mcpgw/mcpgw/internal/store/configjson"
)

// SeedFromConfig: see Store. Agents and backends are seeded in one
// transaction and, when anything changed, under one revision bump.
func (s *sqlStore) SeedFromConfig(ctx context.Context, cfg *config.Config) error {
	if cfg == nil {
		return errors.New("store: seed from config: config is nil")
	}
	err := s.writeTx(ctx, func(tx *sql.Tx) error {
		agents, err := planSeed(ctx, tx, agentTable, cfg.Agents)
		if err != nil {
			return err
		}
		backends, err := planSeed(ctx, tx, backendTable, cfg.Backends)
		if err != nil {
			return err
		}
		if len(agents)+len(backends) == 0 {
			return nil
		}
		rev, err := bumpRevision(ctx, tx)
		if err != nil {
			return err
		}
		now := time.Now()
		var recs []audit.Record
		if recs, err = applySeed(ctx, tx, agentTable, agents, rev, now, recs); err != nil {
			return err
		}
		if recs, err = applySeed(ctx, tx, backendTable, backends, rev, now, recs); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, recs)
	})
	if err != nil {
		return fmt.Errorf("store: seed from config: %w", err)
	}
	return nil
}

// seedStep is one difference between the config file and the table: after
// nil means delete.
type seedStep[T any] struct {
	name          string
	before, after *T
}

// planSeed lists what must change for the table to match the config file:
// every name the file lists, unless already equal and sourced from the file;
// and every file-sourced entry the file no longer lists.
func planSeed[T any](ctx context.Context, tx *sql.Tx, t objectTable[T], want map[string]T) ([]seedStep[T], error) {
	have, err := list(ctx, tx, t)
	if err != nil {
		return nil, err
	}
	stored := make(map[string]Entry[T], len(have))
	for _, e := range have {
		stored[t.name(e.Value)] = e
	}
	names := make([]string, 0, len(want))
	for name := range want {
		names = append(names, name)
	}
	sort.Strings(names)
	var steps []seedStep[T]
	for _, name := range names {
		if err := validateName(t.kind, name); err != nil {
			return nil, err
		}
		v := want[name]
		// The map key is the name, whatever the value's Name field says.
		t.rename(&v, name)
		e, ok := stored[name]
		if !ok {
			steps = append(steps, seedStep[T]{name: name, after: &v})
			continue
		}
		same, err := sameBody(e.Value, v)
		if err != nil {
			return nil, fmt.Errorf("compare %s %q: %w", t.kind, name, err)
		}
		if e.Source != SourceConfig || !same {
			before := e.Value
			steps = append(steps, seedStep[T]{name: name, before: &before, after: &v})
		}
	}
	for _, e := range have {
		name := t.name(e.Value)
		if _, listed := want[name]; !listed && e.Source == SourceConfig {
			before := e.Value
			steps = append(steps, seedStep[T]{name: name, before: &before})
		}
	}
	return steps, nil
}

// sameBody compares two objects as the store encodes them; configjson output
// is canonical (sorted keys, normalized numbers), so equal bytes mean equal
// objects.
func sameBody[T any](a, b T) (bool, error) {
	ab, err := configjson.Marshal(a)
	if err != nil {
		return false, err
	}
	bb, err := configjson.Marshal(b)
	if err != nil {
		return false, err
	}
	return bytes.Equal(ab, bb), nil
}

func applySeed[T any](ctx context.Context, tx *sql.Tx, t objectTable[T], steps []seedStep[T], rev int64, now time.Time, recs []audit.Record) ([]audit.Record, error) {
	for _, st := range steps {
		if st.after != nil {
			if err := upsert(ctx, tx, t, *st.after, SourceConfig, rev, "", now); err != nil {
				return nil, err
			}
		} else if err := deleteRow(ctx, tx, t, st.name); err != nil {
			return nil, err
		}
		r, err := changeRecord(t, st.name, st.before, st.after, SourceConfig, ChangeMeta{}, now)
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	return recs, nil
}
