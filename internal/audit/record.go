// Package audit defines the gateway's audit trail: one record per policy
// decision, per configuration change (snapshots are redacted copies:
// config.Agent.Redacted, config.Backend.Redacted), per tool change and per
// act of the OAuth authorization server, the query over them, and sinks
// that ship records to the store, to stdout as JSON lines, or to an HTTP
// collector.
package audit

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"
)

// Kind tells decision, change, shadow, tool_change and oauth records apart.
type Kind string

const (
	KindDecision Kind = "decision"
	KindChange   Kind = "change"
	// KindShadow records a call the shadow policy would have decided
	// differently: DecisionID is the enforced decision's, Allow, Reasons
	// and Revision are the shadow policy's.
	KindShadow Kind = "shadow"
	// KindToolChange records a tool, prompt or resource template definition
	// a backend lists: one seen for the first time with its hash (ActionSeen:
	// new or changed, which Reasons say), or an administrator's approval or
	// rejection of one (ActionApprove, ActionReject: who in Subject and
	// Issuer). Backend names the backend, ObjectKind and ObjectName the item,
	// Before the approved definition and After the one seen.
	KindToolChange Kind = "tool_change"
	// KindOAuth records what the gateway's OAuth authorization server did
	// or refused at its endpoints: a client registered, a consent given,
	// tokens issued, refreshed or revoked (Allow true), or a request
	// refused (ActionRefuse, Allow false, Reasons say why). Subject and
	// Issuer name the person when known, Agent the agent the client is
	// bound to, ObjectKind ObjectOAuthClient and ObjectName the client_id
	// once there is one.
	KindOAuth Kind = "oauth"
)

// Action is what a change did to its object.
type Action string

const (
	ActionCreate Action = "create"
	ActionUpdate Action = "update"
	ActionDelete Action = "delete"
	// Tool changes (KindToolChange).
	ActionSeen    Action = "seen"
	ActionApprove Action = "approve"
	ActionReject  Action = "reject"
	// What the OAuth endpoints did (KindOAuth). The list is not closed:
	// any non-empty action is stored, so that a new endpoint's records are
	// never dropped as invalid.
	ActionRegister Action = "register"
	ActionConsent  Action = "consent"
	ActionToken    Action = "token"
	ActionRefresh  Action = "refresh"
	ActionRevoke   Action = "revoke"
	ActionRefuse   Action = "refuse"
)

// ObjectKind names the kind of configuration object a change touched.
type ObjectKind string

const (
	ObjectAgent   ObjectKind = "agent"
	ObjectBackend ObjectKind = "backend"
	// Items a backend lists (KindToolChange), as integrity.Kind names them.
	ObjectTool             ObjectKind = "tool"
	ObjectPrompt           ObjectKind = "prompt"
	ObjectResourceTemplate ObjectKind = "resource_template"
	// A client of the gateway's OAuth authorization server (KindOAuth);
	// ObjectName is its client_id.
	ObjectOAuthClient ObjectKind = "oauth_client"
)

// Change sources: who wrote a configuration object.
const (
	SourceConfig = "config" // the config file, applied at start
	SourceAdmin  = "admin"  // the admin API
)

// ErrInvalidRecord marks a record that cannot be stored (unknown kind, change
// without object, malformed before/after JSON).
var ErrInvalidRecord = errors.New("invalid audit record")

// Record is one entry of the audit trail. Decision records fill the request
// fields; change records fill Action, ObjectKind, ObjectName, Before and After
// (secrets already redacted: config.Agent.Redacted, config.Backend.Redacted) and name the
// decision that allowed the change in DecisionID.
type Record struct {
	ID         string    `json:"id"`
	Time       time.Time `json:"time"`
	Kind       Kind      `json:"kind"`
	DecisionID string    `json:"decision_id,omitempty"`
	RequestID  string    `json:"request_id,omitempty"`
	Subject    string    `json:"subject,omitempty"`
	// Issuer is the iss of the token that made the request or change: a
	// subject names a user only within the issuer that asserted it.
	Issuer  string   `json:"issuer,omitempty"`
	Agent   string   `json:"agent,omitempty"`
	Backend string   `json:"backend,omitempty"`
	Method  string   `json:"method,omitempty"`
	Tool    string   `json:"tool,omitempty"`
	Allow   bool     `json:"allow"`
	Reasons []string `json:"reasons,omitempty"`
	// Revision is the policy bundle revision that made the decision.
	Revision string `json:"revision,omitempty"`
	// LatencyMS and Outcome are the request's: the time from its arrival
	// to its answer (for a stream, to the stream's start) and how it ended
	// (ok, denied, backend_error, ...: the request log's outcome). The
	// gateway writes a call's decision records after the relay, so they
	// carry both; eval_us is the policy's own time.
	LatencyMS  float64 `json:"latency_ms,omitempty"`
	Outcome    string  `json:"outcome,omitempty"`
	EvalMicros int64   `json:"eval_us,omitempty"`

	Source     string          `json:"source,omitempty"` // change records: SourceConfig or SourceAdmin
	Action     Action          `json:"action,omitempty"`
	ObjectKind ObjectKind      `json:"object_kind,omitempty"`
	ObjectName string          `json:"object_name,omitempty"`
	Before     json.RawMessage `json:"before,omitempty"`
	After      json.RawMessage `json:"after,omitempty"`
	// Input is the policy input a decision record was made on, when
	// audit.record_inputs kept it: masked by the bundle's system.log.mask
	// rules, as OPA's decision logs would show it, and encoded as ASCII-only
	// JSON (see ASCIIJSON) so that it decodes to exactly what the policy
	// read. InputMasked lists the JSON pointers the mask erased or
	// replaced. Only decision records carry them; the store returns them
	// only when a Query asks (IncludeInput).
	Input       json.RawMessage `json:"input,omitempty"`
	InputMasked []string        `json:"input_masked,omitempty"`
}

// NewID returns a fresh record id. UUIDv7 ids grow with time, which keeps the
// store's (time, id) index append-mostly.
func NewID() string {
	id, err := uuid.NewV7()
	if err != nil {
		// NewV7 fails only when the system random source does; a random v4
		// id still keeps records distinct.
		return uuid.NewString()
	}
	return id.String()
}

// Normalize fills a missing ID and Time, brings Time to UTC with
// microsecond precision, the precision every store keeps, and escapes the
// control, line-separator and bidi characters of every text field (see
// EscapeText; Before and After keep their JSON shape), so that a record
// reads back equal to what was written and all sinks agree on it. Every
// sink and the store normalize what they are given, and normalizing twice
// changes nothing more.
func (r Record) Normalize() Record {
	if r.ID == "" {
		r.ID = NewID()
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC().Truncate(time.Microsecond)
	for _, f := range []*string{&r.ID, &r.DecisionID, &r.RequestID, &r.Subject, &r.Issuer, &r.Agent, &r.Backend,
		&r.Method, &r.Tool, &r.Revision, &r.Source, &r.ObjectName, &r.Outcome} {
		*f = EscapeText(*f)
	}
	r.Kind = Kind(EscapeText(string(r.Kind)))
	r.Action = Action(EscapeText(string(r.Action)))
	r.ObjectKind = ObjectKind(EscapeText(string(r.ObjectKind)))
	r.Reasons = escapeList(r.Reasons)
	r.Before = escapeJSON(r.Before)
	r.After = escapeJSON(r.After)
	// The input is not escaped like Before and After: replay must decide
	// on the values the policy read. ASCII-only JSON is as safe to show.
	r.Input = ASCIIJSON(r.Input)
	r.InputMasked = escapeList(r.InputMasked)
	return r
}

// Validate reports why a record cannot be stored; the error wraps
// ErrInvalidRecord.
func (r Record) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w %s: %s", ErrInvalidRecord, r.ID, fmt.Sprintf(format, args...))
	}
	if r.ID == "" {
		return bad("id is empty")
	}
	if r.Time.IsZero() {
		return bad("time is zero")
	}
	switch r.Kind {
	case KindDecision, KindShadow:
	case KindChange:
		switch r.Action {
		case ActionCreate, ActionUpdate, ActionDelete:
		default:
			return bad("action %q: want create, update or delete", r.Action)
		}
		switch r.ObjectKind {
		case ObjectAgent, ObjectBackend:
		default:
			return bad("object_kind %q: want agent or backend", r.ObjectKind)
		}
		if r.ObjectName == "" {
			return bad("object_name is empty")
		}
	case KindToolChange:
		switch r.Action {
		case ActionSeen, ActionApprove, ActionReject:
		default:
			return bad("action %q: want seen, approve or reject", r.Action)
		}
		switch r.ObjectKind {
		case ObjectTool, ObjectPrompt, ObjectResourceTemplate:
		default:
			return bad("object_kind %q: want tool, prompt or resource_template", r.ObjectKind)
		}
		if r.ObjectName == "" || r.Backend == "" {
			return bad("a tool change needs backend and object_name")
		}
	case KindOAuth:
		if r.Action == "" {
			return bad("an oauth record needs an action")
		}
		switch r.ObjectKind {
		case "":
			if r.ObjectName != "" {
				return bad("object_name %q without object_kind", r.ObjectName)
			}
		case ObjectOAuthClient:
			if r.ObjectName == "" {
				return bad("object_name is empty")
			}
		default:
			return bad("object_kind %q: want oauth_client or none", r.ObjectKind)
		}
	default:
		return bad("kind %q: want decision, change, shadow, tool_change or oauth", r.Kind)
	}
	if len(r.Before) > 0 && !json.Valid(r.Before) {
		return bad("before is not valid JSON")
	}
	if len(r.After) > 0 && !json.Valid(r.After) {
		return bad("after is not valid JSON")
	}
	if (len(r.Input) > 0 || len(r.InputMasked) > 0) && r.Kind != KindDecision {
		return bad("only a decision record keeps an input")
	}
	if len(r.Input) > 0 && !json.Valid(r.Input) {
		return bad("input is not valid JSON")
	}
	return nil
}
