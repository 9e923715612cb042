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

// FieldError is one malformed field of a Query; it matches ErrInvalidQuery.
type FieldError struct {
	Field   string // kind, decision, since, until, limit or cursor
	Problem string
}

func (e *FieldError) Error() string {
	return ErrInvalidQuery.Error() + ": " + e.Field + ": " + e.Problem
}

func (e *FieldError) Unwrap() error { return ErrInvalidQuery }

// FieldErrors lists the FieldErrors in err, which may join several.
func FieldErrors(err error) []*FieldError {
	var out []*FieldError
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		for _, e := range j.Unwrap() {
			out = append(out, FieldErrors(e)...)
		}
		return out
	}
	var fe *FieldError
	if errors.As(err, &fe) {
		out = append(out, fe)
	}
	return out
}

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
	// Tool matches decision records naming that tool, prompt or resource.
	Tool string
	// IncludeInput returns the policy inputs decision records kept
	// (Record.Input, InputMasked); without it they are never read.
	IncludeInput bool
}

// Normalize applies defaults and reports every malformed field at once
// (errors.Join of *FieldError, each wrapping ErrInvalidQuery): a caller
// fixing a query should not have to find its mistakes one request at a time.
func (q Query) Normalize() (Query, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, &FieldError{Field: field, Problem: fmt.Sprintf(format, args...)})
	}
	switch q.Kind {
	case "", KindDecision, KindChange, KindShadow, KindToolChange, KindOAuth:
	default:
		bad("kind", "%q: want decision, change, shadow, tool_change or oauth", q.Kind)
	}
	switch q.Decision {
	case "", DecisionAllow, DecisionDeny:
	default:
		bad("decision", "%q: want allow or deny", q.Decision)
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		bad("since", "%s is not before until %s", q.Since.Format(time.RFC3339Nano), q.Until.Format(time.RFC3339Nano))
	}
	if q.Cursor != "" {
		if _, _, err := DecodeCursor(q.Cursor); err != nil {
			errs = append(errs, err)
		}
	}
	switch {
	case q.Limit < 0:
		bad("limit", "%d is negative", q.Limit)
	case q.Limit == 0:
		q.Limit = DefaultLimit
	case q.Limit > MaxLimit:
		q.Limit = MaxLimit
	}
	if len(errs) > 0 {
		return q, errors.Join(errs...)
	}
	// Filters match stored text, which Record.Normalize escaped: a filter
	// naming a subject with a control character is escaped the same way.
	q.Subject, q.Agent, q.Backend, q.Tool = EscapeText(q.Subject), EscapeText(q.Agent), EscapeText(q.Backend), EscapeText(q.Tool)
	return q, nil
}
