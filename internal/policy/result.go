package policy

import (
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// verdict is a well-formed data.mcp.gateway.decision.
type verdict struct {
	allow       bool
	reasons     []string
	status      int
	scope       string
	obligations *Obligations
}

// errUndefined marks a query whose rule produced no value.
var errUndefined = errors.New("undefined")

// resultValue returns the single value of a prepared query evaluated with
// astValues, or errUndefined.
func resultValue(rs rego.ResultSet) (ast.Value, error) {
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return nil, errUndefined
	}
	if len(rs) > 1 {
		return nil, fmt.Errorf("%d results, want 1", len(rs))
	}
	v, ok := rs[0].Expressions[0].Value.(ast.Value)
	if !ok {
		return nil, fmt.Errorf("result is %T, not an AST value", rs[0].Expressions[0].Value)
	}
	return v, nil
}

// astValues makes rego hand back the AST value of the result instead of
// converting it to Go maps and slices we would only walk again.
func astValues(t *ast.Term, _ *rego.EvalContext) (any, error) { return t.Value, nil }

// parseVerdict checks the shape of the decision object strictly: anything
// unexpected is an error, and the caller denies. status may be absent or 0;
// an allow may also carry a 2xx code (read as 0), a deny a 4xx code.
func parseVerdict(v ast.Value, pc *patternCache) (verdict, error) {
	obj, ok := v.(ast.Object)
	if !ok {
		return verdict{}, fmt.Errorf("decision is %s, not an object", ast.ValueName(v))
	}
	var out verdict
	allow := obj.Get(ast.InternedTerm("allow"))
	if allow == nil {
		return verdict{}, errors.New("decision has no allow field")
	}
	b, ok := allow.Value.(ast.Boolean)
	if !ok {
		return verdict{}, fmt.Errorf("decision allow is %s, not a boolean", ast.ValueName(allow.Value))
	}
	out.allow = bool(b)

	if r := obj.Get(ast.InternedTerm("reasons")); r != nil {
		reasons, err := stringList(r.Value)
		if err != nil {
			return verdict{}, fmt.Errorf("decision reasons: %w", err)
		}
		out.reasons = reasons
	}

	if s := obj.Get(ast.InternedTerm("status")); s != nil {
		n, ok := s.Value.(ast.Number)
		if !ok {
			return verdict{}, fmt.Errorf("decision status is %s, not a number", ast.ValueName(s.Value))
		}
		status, ok := n.Int()
		switch {
		case ok && status == 0:
		case ok && out.allow && status >= 200 && status <= 299:
			// An allow may name the HTTP success it stands for; the
			// gateway forwards the message as for 0.
			status = 0
		case ok && !out.allow && status >= 400 && status <= 499:
		case out.allow:
			return verdict{}, fmt.Errorf("decision allows with status %v: want 0 or a 2xx code", n)
		default:
			return verdict{}, fmt.Errorf("decision status %v is not 0 or a 4xx code", n)
		}
		out.status = status
	}

	if s := obj.Get(ast.InternedTerm("scope")); s != nil {
		str, ok := s.Value.(ast.String)
		if !ok {
			return verdict{}, fmt.Errorf("decision scope is %s, not a string", ast.ValueName(s.Value))
		}
		out.scope = string(str)
	}

	// Obligations bind only an allow: a deny forwards nothing to oblige.
	if o := obj.Get(ast.InternedTerm("obligations")); o != nil && out.allow {
		obl, err := parseObligations(o.Value, pc)
		if err != nil {
			return verdict{}, err
		}
		out.obligations = obl
	}
	return out, nil
}

// stringList accepts an array or a set of strings.
func stringList(v ast.Value) ([]string, error) {
	var out []string
	var bad error
	collect := func(t *ast.Term) {
		s, ok := t.Value.(ast.String)
		if !ok {
			bad = fmt.Errorf("%s is not a string", ast.ValueName(t.Value))
			return
		}
		out = append(out, string(s))
	}
	switch x := v.(type) {
	case *ast.Array:
		out = make([]string, 0, x.Len())
		x.Foreach(collect)
	case ast.Set:
		out = make([]string, 0, x.Len())
		x.Foreach(collect)
	default:
		return nil, fmt.Errorf("%s, not an array or set", ast.ValueName(v))
	}
	if bad != nil {
		return nil, bad
	}
	return out, nil
}

// nameSet turns a visible_* result into the set the gateway filters by.
func nameSet(v ast.Value) (map[string]bool, error) {
	names, err := stringList(v)
	if err != nil {
		return nil, err
	}
	set := make(map[string]bool, len(names))
	for _, n := range names {
		set[n] = true
	}
	return set, nil
}
