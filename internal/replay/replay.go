// Package replay re-evaluates recorded gateway decisions with a candidate
// policy (`mcpgw policy replay`, POST /admin/v1/policy/replay): which of
// the recorded calls would the candidate decide differently?
//
// A recorded decision is an Item: who, what, the allow and reasons as
// recorded and the policy input it was made on, from the audit trail
// (audit.record_inputs) or from an OPA decision-log file. Each input is
// evaluated with data.mcp.gateway.decision of the candidate, and optionally
// of a baseline, offline: nothing the input names (backend, IdP) is
// contacted, and what the input recorded of per-process state (the called
// tool's catalog entry, its integrity classification) is replayed as
// recorded.
package replay

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/policy"
)

// Item is one recorded decision.
type Item struct {
	DecisionID string
	Time       time.Time
	Backend    string
	Agent      string
	Subject    string
	Issuer     string
	Method     string
	Tool       string
	Allow      bool
	Reasons    []string
	// Revision is the policy revision that made the decision.
	Revision string
	// Input is the policy input as recorded; nil when none was kept.
	Input json.RawMessage
	// Masked lists the JSON pointers the recording's system.log.mask
	// erased or replaced in Input.
	Masked []string
}

// Evaluator decides a recorded input: *policy.Engine.
type Evaluator interface {
	DecideInput(ctx context.Context, input json.RawMessage) policy.Decision
	Revision() string
}

// Change kinds, as --fail-on names them.
const (
	AllowToDeny = "allow-to-deny"
	DenyToAllow = "deny-to-allow"
	Reasons     = "reasons"
)

// ChangeKinds lists the kinds of change in the order reports show them.
func ChangeKinds() []string { return []string{AllowToDeny, DenyToAllow, Reasons} }

// Causes of a change, told only with a baseline.
const (
	// CausePolicy: the baseline decides as recorded, the candidate does
	// not: the policy change makes the difference.
	CausePolicy = "policy"
	// CauseState: the baseline already decides the recorded input
	// differently, as the candidate does: data or state the policy reads
	// (time, a different recording revision) changed, not the candidate.
	CauseState = "state"
	// CauseBoth: the baseline differs from the record and the candidate
	// from the baseline.
	CauseBoth = "both"
)

// Verdict is a decision as compared: allow and reasons.
type Verdict struct {
	Allow    bool     `json:"allow"`
	Reasons  []string `json:"reasons"`
	Revision string   `json:"revision,omitempty"`
}

// Change is one recorded decision the candidate decides differently.
type Change struct {
	DecisionID string    `json:"decision_id"`
	Time       time.Time `json:"time,omitzero"`
	Kind       string    `json:"kind"`
	// Cause is told with a baseline: policy, state or both.
	Cause   string `json:"cause,omitempty"`
	Backend string `json:"backend,omitempty"`
	Agent   string `json:"agent,omitempty"`
	Subject string `json:"subject,omitempty"`
	Issuer  string `json:"issuer,omitempty"`
	Method  string `json:"method,omitempty"`
	Tool    string `json:"tool,omitempty"`
	// Before is the decision as recorded, After the candidate's.
	Before   Verdict  `json:"before"`
	After    Verdict  `json:"after"`
	Baseline *Verdict `json:"baseline,omitempty"`
	// Masked: the input was masked when recorded (these pointers).
	Masked []string `json:"masked,omitempty"`
}

// Counts sums the outcomes of a replay.
type Counts struct {
	Unchanged   int `json:"unchanged"`
	AllowToDeny int `json:"allow_to_deny"`
	DenyToAllow int `json:"deny_to_allow"`
	Reasons     int `json:"reasons_changed"`
	// Masked counts the differences on masked inputs not trusted as
	// changes (see Report.Masked).
	Masked int `json:"masked"`
	// NoInput counts the records that kept no input: nothing to replay.
	NoInput int `json:"no_input"`
}

// Group is one value of a dimension (a backend, a tool, ...) and its changes.
type Group struct {
	Value       string `json:"value"`
	AllowToDeny int    `json:"allow_to_deny"`
	DenyToAllow int    `json:"deny_to_allow"`
	Reasons     int    `json:"reasons_changed"`
}

func (g Group) total() int { return g.AllowToDeny + g.DenyToAllow + g.Reasons }

// Report is the result of a replay, as `--json` prints it.
type Report struct {
	Candidate string `json:"candidate_revision"`
	Baseline  string `json:"baseline_revision,omitempty"`
	Records   int    `json:"records"`
	Counts    Counts `json:"counts"`
	// Causes counts the changes by cause, with a baseline.
	Causes map[string]int `json:"causes,omitempty"`
	// Recorded counts the records by the revision that decided them.
	Recorded map[string]int `json:"recorded_revisions"`
	// Groups holds, per dimension (backend, tool, agent, subject), the
	// values with the most changes, at most Options.Top of them.
	Groups map[string][]Group `json:"groups"`
	// Changes lists every change (allow-to-deny, deny-to-allow, reasons).
	Changes []Change `json:"changes"`
	// Masked lists the differences on masked inputs that cannot be
	// trusted: the recording's system.log.mask erased or replaced part of
	// the input, so the candidate decided on less than the recorded
	// decision did, and no baseline reproduced the recorded decision on
	// the masked input (which would show that what the mask took did not
	// matter to it). Such a difference is shown, not counted as a change.
	Masked []Change `json:"masked"`
	// NoInput lists the ids of the records that kept no input.
	NoInput []string `json:"no_input"`
}

// Dimensions are the groupings of a report.
var Dimensions = []string{"backend", "tool", "agent", "subject"}

// Options configures Run.
type Options struct {
	Candidate Evaluator
	// Baseline, when set, is evaluated too, to tell a policy change from a
	// change of data or state (Change.Cause).
	Baseline Evaluator
	// Top bounds each dimension's groups (default 10).
	Top int
}

// Run replays items (any order) and reports.
func Run(ctx context.Context, o Options, items []Item) Report {
	r := Report{
		Candidate: o.Candidate.Revision(),
		Recorded:  map[string]int{},
		Groups:    map[string][]Group{},
		Changes:   []Change{},
		Masked:    []Change{},
		NoInput:   []string{},
	}
	if o.Baseline != nil {
		r.Baseline = o.Baseline.Revision()
		r.Causes = map[string]int{}
	}
	groups := map[string]map[string]*Group{}
	for _, d := range Dimensions {
		groups[d] = map[string]*Group{}
	}
	for _, it := range items {
		if ctx.Err() != nil {
			break
		}
		r.Records++
		r.Recorded[it.Revision]++
		if len(it.Input) == 0 {
			r.Counts.NoInput++
			r.NoInput = append(r.NoInput, it.DecisionID)
			continue
		}
		before := Verdict{Allow: it.Allow, Reasons: nonNil(it.Reasons), Revision: it.Revision}
		cand := o.Candidate.DecideInput(ctx, it.Input)
		after := Verdict{Allow: cand.Allow, Reasons: cand.Reasons, Revision: cand.Revision}
		kind := compare(before, after)
		if kind == "" {
			r.Counts.Unchanged++
			continue
		}
		c := Change{
			DecisionID: it.DecisionID, Time: it.Time, Kind: kind,
			Backend: it.Backend, Agent: it.Agent, Subject: it.Subject, Issuer: it.Issuer, Method: it.Method, Tool: it.Tool,
			Before: before, After: after, Masked: it.Masked,
		}
		if o.Baseline != nil {
			b := o.Baseline.DecideInput(ctx, it.Input)
			base := Verdict{Allow: b.Allow, Reasons: b.Reasons, Revision: b.Revision}
			c.Baseline = &base
			switch {
			case compare(before, base) == "":
				c.Cause = CausePolicy
			case compare(base, after) == "":
				c.Cause = CauseState
			default:
				c.Cause = CauseBoth
			}
		}
		// A masked input lacks what the recorded decision may have read.
		// Its difference is trusted only when the baseline, on the same
		// masked input, reproduces the recorded decision.
		if len(it.Masked) > 0 && (c.Baseline == nil || c.Cause != CausePolicy) {
			r.Counts.Masked++
			r.Masked = append(r.Masked, c)
			continue
		}
		if c.Cause != "" {
			r.Causes[c.Cause]++
		}
		r.Changes = append(r.Changes, c)
		for _, dim := range Dimensions {
			v := map[string]string{"backend": c.Backend, "tool": c.Tool, "agent": c.Agent, "subject": c.Subject}[dim]
			g := groups[dim][v]
			if g == nil {
				g = &Group{Value: v}
				groups[dim][v] = g
			}
			switch kind {
			case AllowToDeny:
				g.AllowToDeny++
			case DenyToAllow:
				g.DenyToAllow++
			case Reasons:
				g.Reasons++
			}
		}
		switch kind {
		case AllowToDeny:
			r.Counts.AllowToDeny++
		case DenyToAllow:
			r.Counts.DenyToAllow++
		case Reasons:
			r.Counts.Reasons++
		}
	}
	top := cmp.Or(o.Top, 10)
	for _, dim := range Dimensions {
		list := make([]Group, 0, len(groups[dim]))
		for _, g := range groups[dim] {
			list = append(list, *g)
		}
		slices.SortFunc(list, func(a, b Group) int {
			return cmp.Or(cmp.Compare(b.total(), a.total()), strings.Compare(a.Value, b.Value))
		})
		r.Groups[dim] = list[:min(len(list), top)]
	}
	slices.SortFunc(r.Changes, byTimeID)
	slices.SortFunc(r.Masked, byTimeID)
	return r
}

func byTimeID(a, b Change) int {
	return cmp.Or(a.Time.Compare(b.Time), strings.Compare(a.DecisionID, b.DecisionID))
}

// compare names how after differs from before: "" when it does not.
// Reasons are compared as sets of the audit trail's escaped text (the
// audit trail stores reasons escaped: see audit.EscapeText).
func compare(before, after Verdict) string {
	switch {
	case before.Allow && !after.Allow:
		return AllowToDeny
	case !before.Allow && after.Allow:
		return DenyToAllow
	}
	if !sameReasons(before.Reasons, after.Reasons) {
		return Reasons
	}
	return ""
}

func sameReasons(a, b []string) bool {
	norm := func(list []string) []string {
		out := make([]string, 0, len(list))
		for _, s := range list {
			out = append(out, audit.EscapeText(s))
		}
		slices.Sort(out)
		return slices.Compact(out)
	}
	return slices.Equal(norm(a), norm(b))
}

func nonNil(list []string) []string {
	if list == nil {
		return []string{}
	}
	return list
}

// Trips reports whether the report has a change of one of kinds (as
// --fail-on names them). With a baseline, changes whose cause is state
// alone do not count: the candidate did not make them.
func (r Report) Trips(kinds []string) bool {
	for _, c := range r.Changes {
		if c.Cause == CauseState {
			continue
		}
		if slices.Contains(kinds, c.Kind) {
			return true
		}
	}
	return false
}

// ParseKinds reads a --fail-on list: allow-to-deny, deny-to-allow, reasons.
func ParseKinds(s string) ([]string, error) {
	var out []string
	for k := range strings.SplitSeq(s, ",") {
		k = strings.TrimSpace(k)
		if k == "" {
			continue
		}
		if !slices.Contains(ChangeKinds(), k) {
			return nil, fmt.Errorf("unknown change kind %q (want %s)", k, strings.Join(ChangeKinds(), ", "))
		}
		out = append(out, k)
	}
	return out, nil
}
