package store

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/integrity"
)

// ErrStale refuses an approval or rejection that names a definition (by
// hash) other than the one the backend lists now: the administrator
// reviewed something else.
var ErrStale = errors.New("the item's current definition is not the one named")

// Pin is the stored pin of one item a backend lists (README, Tool
// integrity): the approved, the rejected and the last seen definition.
type Pin struct {
	Backend      string
	Kind         integrity.Kind
	Name         string
	ApprovedHash string // "" when nothing was approved
	ApprovedBody json.RawMessage
	ApprovedAt   time.Time
	ApprovedBy   string
	RejectedHash string
	CurrentHash  string
	CurrentBody  json.RawMessage
	CurrentAt    time.Time // when the current definition was first seen as current
}

// Integrity is what classifying a definition needs of p.
func (p Pin) Integrity() integrity.Pin {
	return integrity.Pin{ApprovedHash: p.ApprovedHash, ApprovedBody: p.ApprovedBody, RejectedHash: p.RejectedHash}
}

// Pending reports a current definition that is neither approved nor
// rejected: what an administrator has to look at.
func (p Pin) Pending() bool {
	return p.CurrentHash != p.ApprovedHash && p.CurrentHash != p.RejectedHash
}

// Sighting is one definition ObserveDefinitions recorded.
type Sighting struct {
	Pin Pin
	// Fresh: this definition (its hash) was stored for the first time by
	// this call, in this process or any other sharing the database.
	Fresh bool
	// Status is the definition's classification before this call (new or
	// changed when Fresh); with trustFirst it may have been approved since.
	Status integrity.Status
	// Changed names the fields that differ from the approved definition.
	Changed []string
}

// TrustFirstSource is the approver ApprovedBy and audit records name for a
// definition approved by trust_on_first_use.
const TrustFirstSource = "trust_on_first_use"

// pinColumns are read by scanPin, the bodies joined from tool_definitions.
const pinColumns = "p.backend, p.kind, p.name, p.approved_hash, COALESCE(a.body, ''), p.approved_us, p.approved_by," +
	" p.rejected_hash, p.current_hash, COALESCE(c.body, ''), p.current_us"

const pinJoins = " FROM tool_pins p" +
	" LEFT JOIN tool_definitions a ON a.backend = p.backend AND a.kind = p.kind AND a.name = p.name AND a.hash = p.approved_hash" +
	" LEFT JOIN tool_definitions c ON c.backend = p.backend AND c.kind = p.kind AND c.name = p.name AND c.hash = p.current_hash"

func scanPin(sc interface{ Scan(...any) error }) (Pin, error) {
	var (
		p                 Pin
		kind              string
		approved, current string
		approvedUS, curUS int64
	)
	if err := sc.Scan(&p.Backend, &kind, &p.Name, &p.ApprovedHash, &approved, &approvedUS, &p.ApprovedBy,
		&p.RejectedHash, &p.CurrentHash, &current, &curUS); err != nil {
		return p, err
	}
	p.Kind = integrity.Kind(kind)
	if approved != "" {
		p.ApprovedBody = json.RawMessage(approved)
	}
	if current != "" {
		p.CurrentBody = json.RawMessage(current)
	}
	if approvedUS > 0 {
		p.ApprovedAt = time.UnixMicro(approvedUS).UTC()
	}
	p.CurrentAt = time.UnixMicro(curUS).UTC()
	return p, nil
}

// ListPins returns every pin of backend, by kind and name.
func (s *sqlStore) ListPins(ctx context.Context, backend string) ([]Pin, error) {
	pins, err := queryPins(ctx, s.db, " WHERE p.backend = $1 ORDER BY p.kind, p.name", backend)
	if err != nil {
		return nil, fmt.Errorf("store: list pins of backend %q: %w", backend, err)
	}
	return pins, nil
}

func queryPins(ctx context.Context, q queryer, where string, args ...any) ([]Pin, error) {
	rows, err := q.QueryContext(ctx, "SELECT "+pinColumns+pinJoins+where, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []Pin
	for rows.Next() {
		p, err := scanPin(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

func getPin(ctx context.Context, q queryer, backend string, kind integrity.Kind, name string) (Pin, bool, error) {
	pins, err := queryPins(ctx, q, " WHERE p.backend = $1 AND p.kind = $2 AND p.name = $3", backend, string(kind), name)
	if err != nil || len(pins) == 0 {
		return Pin{}, false, err
	}
	return pins[0], true, nil
}

// PinRevision grows with every approval or rejection, from any process
// sharing the database: replicas poll it to drop what they remember.
func (s *sqlStore) PinRevision(ctx context.Context) (int64, error) {
	var v int64
	if err := s.db.QueryRowContext(ctx, "SELECT value FROM pin_revision WHERE id = 1").Scan(&v); err != nil {
		return 0, fmt.Errorf("store: read pin revision: %w", err)
	}
	return v, nil
}

// pinTx runs fn in a transaction that first locks the pin revision row, so
// that writers of pins take turns without waiting for agent and backend
// writes.
func (s *sqlStore) pinTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	lock := "SELECT value FROM pin_revision WHERE id = 1"
	if s.d.name == postgresDialect.name {
		lock += " FOR UPDATE"
	}
	return s.lockedTx(ctx, lock, "pin revision", fn)
}

func bumpPinRevision(ctx context.Context, tx *sql.Tx) error {
	if _, err := tx.ExecContext(ctx, "UPDATE pin_revision SET value = value + 1 WHERE id = 1"); err != nil {
		return fmt.Errorf("bump pin revision: %w", err)
	}
	return nil
}

// ObserveDefinitions records definitions backend lists now: each becomes
// its item's current definition, and a definition stored for the first
// time is Fresh and gets a tool_change audit record (ActionSeen), written in
// the same transaction. With trustFirst, definitions of a kind for which
// the backend has nothing approved or rejected yet are approved as seen
// (trust on first use), with an ActionApprove record each. It returns one
// Sighting per definition and the audit records written, for other sinks.
func (s *sqlStore) ObserveDefinitions(ctx context.Context, backend string, defs []integrity.Definition, trustFirst bool, meta ChangeMeta) ([]Sighting, []audit.Record, error) {
	var (
		out  []Sighting
		recs []audit.Record
	)
	err := s.pinTx(ctx, func(tx *sql.Tx) error {
		out, recs = make([]Sighting, 0, len(defs)), nil
		now := time.Now()
		trusted := map[integrity.Kind]bool{}
		if trustFirst {
			for _, d := range defs {
				if _, asked := trusted[d.Kind]; asked {
					continue
				}
				var n int
				if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM tool_pins WHERE backend = $1 AND kind = $2 AND (approved_hash <> '' OR rejected_hash <> '')",
					backend, string(d.Kind)).Scan(&n); err != nil {
					return fmt.Errorf("count pins: %w", err)
				}
				trusted[d.Kind] = n == 0
			}
		}
		approvedAny := false
		for _, d := range defs {
			sg, rs, err := observe(ctx, tx, backend, d, trusted[d.Kind], meta, now)
			if err != nil {
				return fmt.Errorf("%s %q: %w", d.Kind, d.Name, err)
			}
			approvedAny = approvedAny || len(rs) > 1
			out, recs = append(out, sg), append(recs, rs...)
		}
		if approvedAny {
			if err := bumpPinRevision(ctx, tx); err != nil {
				return err
			}
		}
		return s.insertAudit(ctx, tx, recs)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store: observe definitions of backend %q: %w", backend, err)
	}
	return out, recs, nil
}

func observe(ctx context.Context, tx *sql.Tx, backend string, d integrity.Definition, trust bool, meta ChangeMeta, now time.Time) (Sighting, []audit.Record, error) {
	res, err := tx.ExecContext(ctx, "INSERT INTO tool_definitions (backend, kind, name, hash, body, first_seen_us) VALUES ($1, $2, $3, $4, $5, $6)"+
		" ON CONFLICT (backend, kind, name, hash) DO NOTHING", backend, string(d.Kind), d.Name, d.Hash, string(d.Body), now.UnixMicro())
	if err != nil {
		return Sighting{}, nil, fmt.Errorf("write definition: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return Sighting{}, nil, fmt.Errorf("write definition: %w", err)
	}
	sg := Sighting{Fresh: n == 1}
	_, err = tx.ExecContext(ctx, "INSERT INTO tool_pins (backend, kind, name, current_hash, current_us) VALUES ($1, $2, $3, $4, $5)"+
		" ON CONFLICT (backend, kind, name) DO UPDATE SET current_hash = excluded.current_hash, current_us = excluded.current_us"+
		" WHERE tool_pins.current_hash <> excluded.current_hash", backend, string(d.Kind), d.Name, d.Hash, now.UnixMicro())
	if err != nil {
		return Sighting{}, nil, fmt.Errorf("write pin: %w", err)
	}
	pin, _, err := getPin(ctx, tx, backend, d.Kind, d.Name)
	if err != nil {
		return Sighting{}, nil, fmt.Errorf("read pin: %w", err)
	}
	c := integrity.Classify(d, pin.Integrity())
	sg.Status, sg.Changed = c.Status, c.Changed
	var recs []audit.Record
	if sg.Fresh {
		reason := string(c.Status)
		if len(c.Changed) > 0 {
			reason += ": " + strings.Join(c.Changed, ", ")
		}
		recs = append(recs, pinRecord(pin, audit.ActionSeen, ChangeMeta{RequestID: meta.RequestID}, []string{reason}, now))
	}
	if trust && c.Status != integrity.StatusApproved {
		if _, err := tx.ExecContext(ctx, "UPDATE tool_pins SET approved_hash = $4, approved_us = $5, approved_by = $6, rejected_hash = ''"+
			" WHERE backend = $1 AND kind = $2 AND name = $3", backend, string(d.Kind), d.Name, d.Hash, now.UnixMicro(), TrustFirstSource); err != nil {
			return Sighting{}, nil, fmt.Errorf("approve on first use: %w", err)
		}
		if pin, _, err = getPin(ctx, tx, backend, d.Kind, d.Name); err != nil {
			return Sighting{}, nil, fmt.Errorf("read pin: %w", err)
		}
		rec := pinRecord(pin, audit.ActionApprove, ChangeMeta{RequestID: meta.RequestID}, []string{"approved on first use (tool_integrity: trust_on_first_use)"}, now)
		rec.Source = TrustFirstSource
		recs = append(recs, rec)
	}
	sg.Pin = pin
	return sg, recs, nil
}

// pinRecord is the tool_change audit record of an action on pin.
func pinRecord(p Pin, action audit.Action, meta ChangeMeta, reasons []string, now time.Time) audit.Record {
	source := audit.SourceAdmin
	if action == audit.ActionSeen {
		source = "" // the backend listed it; nobody acted
	}
	return audit.Record{
		Time: now, Kind: audit.KindToolChange, DecisionID: meta.DecisionID, RequestID: meta.RequestID,
		Subject: meta.Subject, Issuer: meta.Issuer, Agent: meta.Agent, Backend: p.Backend, Tool: p.Name,
		Allow: action != audit.ActionReject, Reasons: reasons, Revision: meta.Revision, Source: source,
		Action: action, ObjectKind: audit.ObjectKind(p.Kind), ObjectName: p.Name, Before: p.ApprovedBody, After: p.CurrentBody,
	}.Normalize()
}

// PinDecision names what an administrator approves or rejects: one item
// (Kind and Name, and optionally the Hash of the definition reviewed) or,
// with Name empty, every pending item of the backend.
type PinDecision struct {
	Backend string
	Kind    integrity.Kind
	Name    string
	Hash    string
	Approve bool
}

// DecidePins approves or rejects the current definition of the items d
// names, each with a tool_change audit record in the same transaction, and
// returns the pins as they are now with the records. One named item that
// does not exist is ErrNotFound; a Hash that is not its current definition
// is ErrStale. Items already decided so are left alone.
func (s *sqlStore) DecidePins(ctx context.Context, d PinDecision, meta ChangeMeta) ([]Pin, []audit.Record, error) {
	var (
		out  []Pin
		recs []audit.Record
	)
	err := s.pinTx(ctx, func(tx *sql.Tx) error {
		out, recs = nil, nil
		var targets []Pin
		if d.Name == "" {
			all, err := queryPins(ctx, tx, " WHERE p.backend = $1 ORDER BY p.kind, p.name", d.Backend)
			if err != nil {
				return fmt.Errorf("read pins: %w", err)
			}
			for _, p := range all {
				if p.Pending() {
					targets = append(targets, p)
				}
			}
		} else {
			p, ok, err := getPin(ctx, tx, d.Backend, d.Kind, d.Name)
			switch {
			case err != nil:
				return fmt.Errorf("read pin: %w", err)
			case !ok:
				return fmt.Errorf("%s %q: %w", d.Kind, d.Name, ErrNotFound)
			case d.Hash != "" && d.Hash != p.CurrentHash:
				return fmt.Errorf("%s %q: %w (current %s)", d.Kind, d.Name, ErrStale, p.CurrentHash)
			}
			targets = append(targets, p)
		}
		now := time.Now()
		for _, p := range targets {
			stmt, action := "UPDATE tool_pins SET approved_hash = current_hash, approved_us = $4, approved_by = $5, rejected_hash = ''", audit.ActionApprove
			if !d.Approve {
				stmt, action = "UPDATE tool_pins SET rejected_hash = current_hash", audit.ActionReject
			}
			if (d.Approve && p.CurrentHash == p.ApprovedHash) || (!d.Approve && p.CurrentHash == p.RejectedHash) {
				out = append(out, p)
				continue
			}
			args := []any{p.Backend, string(p.Kind), p.Name}
			if d.Approve {
				args = append(args, now.UnixMicro(), meta.Subject)
			}
			if _, err := tx.ExecContext(ctx, stmt+" WHERE backend = $1 AND kind = $2 AND name = $3", args...); err != nil {
				return fmt.Errorf("%s %s %q: %w", action, p.Kind, p.Name, err)
			}
			recs = append(recs, pinRecord(p, action, meta, []string{fmt.Sprintf("%s %s by %s", action, p.CurrentHash, meta.Subject)}, now))
			after, _, err := getPin(ctx, tx, p.Backend, p.Kind, p.Name)
			if err != nil {
				return fmt.Errorf("read pin: %w", err)
			}
			out = append(out, after)
		}
		if len(recs) == 0 {
			return nil
		}
		if err := bumpPinRevision(ctx, tx); err != nil {
			return err
		}
		return s.insertAudit(ctx, tx, recs)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("store: decide pins of backend %q: %w", d.Backend, err)
	}
	return out, recs, nil
}
