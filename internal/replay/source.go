package replay

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
)

// Filter selects recorded decisions. Empty fields do not filter.
type Filter struct {
	Since, Until time.Time
	Backend      string
	Agent        string
	Subject      string
	Tool         string
}

func (f Filter) match(it Item) bool {
	switch {
	case !f.Since.IsZero() && it.Time.Before(f.Since):
		return false
	case !f.Until.IsZero() && !it.Time.Before(f.Until):
		return false
	case f.Backend != "" && it.Backend != f.Backend:
		return false
	case f.Agent != "" && it.Agent != f.Agent:
		return false
	case f.Subject != "" && it.Subject != f.Subject:
		return false
	case f.Tool != "" && it.Tool != f.Tool:
		return false
	}
	return true
}

// AuditQuerier reads the audit trail: store.Store.
type AuditQuerier interface {
	QueryAudit(ctx context.Context, q audit.Query) ([]audit.Record, string, error)
}

// MaxItems bounds one replay: a larger selection is refused, to be
// narrowed with --since, --until or the filters.
const MaxItems = 200_000

// FromStore reads the decision records f selects, with their inputs.
// Decisions of the admin API (records without a backend) are not the
// gateway's call decisions and are left out.
func FromStore(ctx context.Context, st AuditQuerier, f Filter) ([]Item, error) {
	q := audit.Query{
		Kind: audit.KindDecision, Subject: f.Subject, Agent: f.Agent, Backend: f.Backend, Tool: f.Tool,
		Since: f.Since, Until: f.Until, Limit: audit.MaxLimit, IncludeInput: true,
	}
	var out []Item
	for {
		recs, next, err := st.QueryAudit(ctx, q)
		if err != nil {
			return nil, err
		}
		for _, r := range recs {
			if r.Backend == "" {
				continue
			}
			out = append(out, Item{
				DecisionID: r.DecisionID, Time: r.Time, Backend: r.Backend, Agent: r.Agent, Subject: r.Subject,
				Issuer: r.Issuer, Method: r.Method, Tool: r.Tool, Allow: r.Allow, Reasons: r.Reasons,
				Revision: r.Revision, Input: r.Input, Masked: r.InputMasked,
			})
		}
		if len(out) > MaxItems {
			return nil, fmt.Errorf("more than %d recorded decisions selected: narrow the time range or filter", MaxItems)
		}
		if next == "" {
			return out, nil
		}
		q.Cursor = next
	}
}

// decisionPaths are how OPA's decision logs name the gateway's decision:
// the path OPA's server and mcpgw write, and the query forms.
var decisionPaths = []string{"mcp/gateway/decision", "/mcp/gateway/decision", "data.mcp.gateway.decision", "data/mcp/gateway/decision"}

// opaEvent is the part of an OPA decision-log event (plugins/logs EventV1)
// replay reads. OPA's console decision logger writes the same fields, with
// its own (level, msg, time) beside them.
type opaEvent struct {
	DecisionID string                     `json:"decision_id"`
	Path       string                     `json:"path"`
	Query      string                     `json:"query"`
	Input      json.RawMessage            `json:"input"`
	Result     json.RawMessage            `json:"result"`
	Bundles    map[string]json.RawMessage `json:"bundles"`
	Revision   string                     `json:"revision"`
	Erased     []string                   `json:"erased"`
	Masked     []string                   `json:"masked"`
	Error      json.RawMessage            `json:"error"`
	Timestamp  time.Time                  `json:"timestamp"`
}

// FromDecisionLog reads OPA decision-log events, one JSON object a line (as
// OPA's decision-log plugin uploads them once decompressed, or as its
// console logger prints them; a line holding a JSON array of events, as
// one upload's body, is read too). Events of other queries than the
// gateway's decision and lines that are not events (other log lines) are
// skipped and counted. Events the mask emptied of input are kept, with no
// input.
func FromDecisionLog(r io.Reader, f Filter) (items []Item, skipped int, err error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 1<<20), 64<<20)
	line := 0
	for sc.Scan() {
		line++
		text := bytes.TrimSpace(sc.Bytes())
		if len(text) == 0 {
			continue
		}
		var events []opaEvent
		if text[0] == '[' {
			if err := json.Unmarshal(text, &events); err != nil {
				return nil, 0, fmt.Errorf("line %d: %w", line, err)
			}
		} else {
			var ev opaEvent
			if err := json.Unmarshal(text, &ev); err != nil {
				return nil, 0, fmt.Errorf("line %d: %w", line, err)
			}
			events = []opaEvent{ev}
		}
		for _, ev := range events {
			it, ok, err := ev.item()
			if err != nil {
				return nil, 0, fmt.Errorf("line %d: decision %s: %w", line, ev.DecisionID, err)
			}
			if !ok {
				skipped++
				continue
			}
			if f.match(it) {
				items = append(items, it)
			}
			if len(items) > MaxItems {
				return nil, 0, fmt.Errorf("more than %d decisions selected: narrow the time range or filter", MaxItems)
			}
		}
	}
	if err := sc.Err(); err != nil {
		return nil, 0, err
	}
	return items, skipped, nil
}

func (ev opaEvent) item() (Item, bool, error) {
	path := ev.Path
	if path == "" {
		path = ev.Query
	}
	if ev.DecisionID == "" || !slices.Contains(decisionPaths, path) {
		return Item{}, false, nil
	}
	it := Item{DecisionID: ev.DecisionID, Time: ev.Timestamp, Revision: ev.revision()}
	it.Masked = append(append([]string{}, ev.Erased...), ev.Masked...)
	if len(it.Masked) == 0 {
		it.Masked = nil
	}
	if len(ev.Input) > 0 && !bytes.Equal(ev.Input, []byte("null")) {
		it.Input = ev.Input
		var in struct {
			Token struct {
				Sub string `json:"sub"`
				Iss string `json:"iss"`
			} `json:"token"`
			Agent struct {
				ID string `json:"id"`
			} `json:"agent"`
			Backend struct {
				Name string `json:"name"`
			} `json:"backend"`
			MCP struct {
				Method string `json:"method"`
				Tool   string `json:"tool"`
			} `json:"mcp"`
		}
		// Fields the mask removed, or of another shape, stay empty.
		_ = json.Unmarshal(ev.Input, &in)
		it.Subject, it.Issuer, it.Agent, it.Backend = in.Token.Sub, in.Token.Iss, in.Agent.ID, in.Backend.Name
		it.Method, it.Tool = in.MCP.Method, in.MCP.Tool
	}
	switch {
	case len(ev.Error) > 0 && !bytes.Equal(ev.Error, []byte("null")) && len(ev.Result) == 0:
		// The gateway denied: its engine failed (the reason is the error).
		it.Reasons = []string{"policy engine error: " + errorText(ev.Error)}
	case len(ev.Result) == 0 || bytes.Equal(ev.Result, []byte("null")):
		it.Reasons = []string{"policy engine error: " + "data.mcp.gateway.decision is undefined"}
	default:
		var res struct {
			Allow   *bool    `json:"allow"`
			Reasons []string `json:"reasons"`
		}
		if err := json.Unmarshal(ev.Result, &res); err != nil || res.Allow == nil {
			return Item{}, false, errors.New("result is not a decision {allow, reasons}")
		}
		it.Allow, it.Reasons = *res.Allow, res.Reasons
		if !it.Allow && len(it.Reasons) == 0 {
			it.Reasons = []string{"denied by policy (no reason given)"}
		}
	}
	return it, true, nil
}

// revision names the revision of an event as the audit trail does: the
// only bundle's bare revision, else name=revision pairs.
func (ev opaEvent) revision() string {
	if len(ev.Bundles) == 0 {
		return ev.Revision
	}
	revs := map[string]string{}
	for name, raw := range ev.Bundles {
		var b struct {
			Revision string `json:"revision"`
		}
		_ = json.Unmarshal(raw, &b)
		revs[name] = b.Revision
	}
	if len(revs) == 1 {
		for _, rev := range revs {
			return rev
		}
	}
	var pairs []string
	for _, name := range slices.Sorted(maps.Keys(revs)) {
		pairs = append(pairs, name+"="+revs[name])
	}
	return strings.Join(pairs, ",")
}

func errorText(raw json.RawMessage) string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s
	}
	var obj struct {
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &obj) == nil && obj.Message != "" {
		return obj.Message
	}
	return string(raw)
}
