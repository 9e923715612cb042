package audit

import (
	"errors"
	"fmt"
	"time"
)

// Page sizes of QueryAudit.
const (
	DefaultLimit = 100
	MaxLimit     = 1000
)

// Decision filter values.
const (
	DecisionAllow = "allow"
	DecisionDeny  = "deny"
)

// ErrInvalidQuery marks a query the caller got wrong (bad filter value or
// cursor): an API maps it to 400.
var ErrInvalidQuery = errors.New("invalid audit query")

// Query selects audit records, newest first. Empty fields do not filter.
type Query struct {
	Kind    Kind
	Subject string
	// Agent matches records made through that agent and changes to it.
	Agent string
	// Backend matches records about that backend and changes to it.
	Backend string
	// Decision is "allow" or "deny" and matches the allow flag; change
	// records were allowed, so "deny" never returns them.
	Decision string
	Since    time.Time // inclusive
	Until    time.Time // exclusive
	// Limit is the page size: 0 means DefaultLimit, larger than MaxLimit is
	// cut to MaxLimit.
	Limit int
	// Cursor is the opaque next value of the previous page.
	Cursor string
}

// Normalize applies defaults and reports a malformed query; the error wraps
// ErrInvalidQuery and names the field.
func (q Query) Normalize() (Query, error) {
	switch q.Kind {
	case "", KindDecision, KindChange, KindShadow:
	default:
		return q, fmt.Errorf("%w: kind %q: want decision, change or shadow", ErrInvalidQuery, q.Kind)
	}
	switch q.Decision {
	case "", DecisionAllow, DecisionDeny:
	default:
		return q, fmt.Errorf("%w: decision %q: want allow or deny", ErrInvalidQuery, q.Decision)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return q, fmt.Errorf("%w: since %s is not before until %s", ErrInvalidQuery,
			q.Since.Format(time.RFC3339Nano), q.Until.Format(time.RFC3339Nano))
	}
	// Filters match stored text, which Record.Normalize escaped: a filter
	// naming a subject with a control character is escaped the same way.
	q.Subject, q.Agent, q.Backend = EscapeText(q.Subject), EscapeText(q.Agent), EscapeText(q.Backend)
	switch {
	case q.Limit < 0:
		return q, fmt.Errorf("%w: limit %d is negative", ErrInvalidQuery, q.Limit)
	case q.Limit == 0:
		q.Limit = DefaultLimit
	case q.Limit > MaxLimit:
		q.Limit = MaxLimit
	}
	return q, nil
}
