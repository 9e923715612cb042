package policy

import (
	"context"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"

	lru "github.com/hashicorp/golang-lru/v2"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// Caller memo: the rules a decision shares with every other decision of
// the same caller, evaluated once per caller.
//
// Much of a decision is about the caller alone: its roles and grants, its
// effective scopes, the checks on its agent and token (the shipped policy's
// caller_denials, caller_roles, caller_grants, effective_scopes). Those
// rules read input.version, input.token, input.agent and input.backend and
// nothing else of the input, so their values are the same for every
// message of that caller to that backend. The engine finds such rules at
// activation (callerRules), evaluates them once per caller (memoQuery) and
// hands their values to each evaluation of the decision with OPA's `with`
// (the rule's document replaced by its own value), which then skips them.
//
// Replacing a rule by the value it has for this very input changes
// nothing in the result; what has to hold is that the value is this
// input's. It is: the memo is per activation (same rules, same data), and
// keyed by a hash of the whole caller part of the input as the engine
// builds it (callerPart), which is all those rules can read: every
// reference to the input in them and in every rule they reach starts with
// input.version, input.token, input.agent or input.backend (a bare input,
// input[x] or any other field disqualifies the rule), and none of them uses
// `with`. The decision cache's condition holds too: no rule calls a
// builtin that is not a function of its arguments (the memo is built only
// when decisions may be cached). Only rules that are always defined are
// replaced (a partial set or object, or a rule with a default): `with`
// cannot make a document undefined.

// callerFields are the input fields the memo is keyed by.
var callerFields = []string{"version", "token", "agent", "backend"}

// callerMemoSize bounds the callers remembered per activation.
const callerMemoSize = 4096

// callerMemo is one activation's memo of caller rules.
type callerMemo struct {
	// docs are the replaced documents, in the order of memoQuery's array.
	docs []ast.Ref
	// memo evaluates the documents to an array; decision evaluates the
	// decision over {"real": input, "memo": that array}.
	memo, decision preparedQuery
	// seeds key values: 128 bits, as the decision cache's, since a
	// collision would hand one caller another's roles and grants.
	seeds  [2]maphash.Seed
	values *lru.Cache[[2]uint64, ast.Value]
}

// memoQueries are the two queries a memo over docs prepares.
func memoQueries(docs []ast.Ref) (memo, decision string) {
	parts := make([]string, len(docs))
	withs := make([]string, len(docs))
	for i, d := range docs {
		parts[i] = d.String()
		withs[i] = fmt.Sprintf(" with %s as input.memo[%d]", d, i)
	}
	memo = "[" + strings.Join(parts, ", ") + "]"
	decision = decisionRule + " with input as input.real" + strings.Join(withs, "")
	return memo, decision
}

// callerRules lists the documents the decision rule reaches that read only
// the caller's part of the input and are always defined, outermost first:
// a document only reached through another one in the list is left out.
func callerRules(compiler *ast.Compiler) []ast.Ref {
	f, own, closure, err := queryRules(compiler, decisionRule)
	if err != nil {
		return nil
	}

	callerOnly := map[*ast.Rule]bool{}
	var only func(r *ast.Rule, seen map[*ast.Rule]bool) bool
	only = func(r *ast.Rule, seen map[*ast.Rule]bool) bool {
		if v, ok := callerOnly[r]; ok {
			return v
		}
		if seen[r] {
			return false
		}
		seen[r] = true
		facts := f.inspect(r)
		ok := !facts.readsInput && !facts.with && !facts.impure
		for _, d := range facts.deps {
			ok = ok && only(d, seen)
		}
		callerOnly[r] = ok
		return ok
	}
	for _, r := range closure {
		only(r, map[*ast.Rule]bool{})
	}

	// Walk from the query: a document reached by a rule that will be
	// evaluated is replaced if it can be; if not, its own rules will be
	// evaluated, and what they reach is walked in turn.
	seen := map[string]bool{}
	var docs []ast.Ref
	work := slices.Clone(own.deps)
	for len(work) > 0 {
		r := work[0]
		work = work[1:]
		doc := documentOf(r)
		key := doc.String()
		if seen[key] {
			continue
		}
		seen[key] = true
		if replaceable(compiler, doc, callerOnly) {
			docs = append(docs, doc)
			continue
		}
		for _, rr := range compiler.GetRulesWithPrefix(doc) {
			work = append(work, f.inspect(rr).deps...)
		}
	}
	slices.SortFunc(docs, func(a, b ast.Ref) int { return strings.Compare(a.String(), b.String()) })
	return docs
}

// documentOf is the document a rule contributes to: its ref up to the
// first variable.
func documentOf(r *ast.Rule) ast.Ref {
	return r.Ref().GroundPrefix()
}

// replaceable reports whether `with doc as value` can stand for doc's
// rules: every rule under doc makes doc itself (none a deeper document),
// reads only the caller, takes no arguments, and doc is always defined.
func replaceable(compiler *ast.Compiler, doc ast.Ref, callerOnly map[*ast.Rule]bool) bool {
	rules := compiler.GetRulesWithPrefix(doc)
	if len(rules) == 0 {
		return false
	}
	defined := false
	for _, r := range rules {
		if !callerOnly[r] || len(r.Head.Args) > 0 || !documentOf(r).Equal(doc) {
			return false
		}
		ref := r.Head.Ref()
		switch {
		case r.Default:
			defined = true
		case r.Head.RuleKind() == ast.MultiValue:
			defined = true // a partial set: empty at worst
		case len(ref) > 1 && !ref[len(ref)-1].IsGround():
			defined = true // a partial object: empty at worst
		case len(rules) == 1 && comprehensionValue(r):
			defined = true
		}
	}
	return defined
}

// comprehensionValue reports whether r is `p := <comprehension>` with no
// condition: the compiler writes it as the body `__localN__ = {...}` and the
// value __localN__, and a comprehension is never undefined (empty at
// worst; an error is an error either way).
func comprehensionValue(r *ast.Rule) bool {
	if r.Else != nil || len(r.Body) != 1 || r.Head.Value == nil {
		return false
	}
	v, ok := r.Head.Value.Value.(ast.Var)
	if !ok {
		return false
	}
	expr := r.Body[0]
	if !expr.IsEquality() || len(expr.With) > 0 || expr.Negated {
		return false
	}
	terms := expr.Operands()
	if len(terms) != 2 || terms[0].Value.Compare(v) != 0 {
		return false
	}
	switch terms[1].Value.(type) {
	case *ast.SetComprehension, *ast.ArrayComprehension, *ast.ObjectComprehension:
		return true
	}
	return false
}

// newCallerMemo prepares the memo of compiler's caller rules, or returns
// nil when there are none or the queries do not prepare (decisions are
// then evaluated whole).
func newCallerMemo(compiler *ast.Compiler, prepare func(query string) (preparedQuery, error)) (*callerMemo, error) {
	docs := callerRules(compiler)
	if len(docs) == 0 {
		return nil, nil
	}
	values, err := lru.New[[2]uint64, ast.Value](callerMemoSize)
	if err != nil {
		return nil, err
	}
	memoText, decisionText := memoQueries(docs)
	memo, err := prepare(memoText)
	if err != nil {
		return nil, fmt.Errorf("prepare caller memo: %w", err)
	}
	decision, err := prepare(decisionText)
	if err != nil {
		return nil, fmt.Errorf("prepare decision over the caller memo: %w", err)
	}
	return &callerMemo{docs: docs, memo: memo, decision: decision, seeds: [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}, values: values}, nil
}

// key hashes the caller part of a decision's input.
func (m *callerMemo) key(caller map[string]any) [2]uint64 {
	return [2]uint64{hashAny(m.seeds[0], caller, 0), hashAny(m.seeds[1], caller, 0)}
}

// evalDecision evaluates the decision rule over input, with snap's caller
// memo when look's activation has one: the memo's values for this caller
// (evaluated first if not yet remembered), then the decision with them. A
// policy activated meanwhile evaluates its own decision over the plain
// input instead.
func (e *Engine) evalDecision(ctx context.Context, look callLookup, input ast.Value, caller map[string]any) (rego.ResultSet, *snapshot, error) {
	if err := e.usable(); err != nil {
		return nil, nil, err
	}
	plain := func(s *snapshot) (preparedQuery, ast.Value) { return s.decision, input }
	var m *callerMemo
	if look.snap != nil {
		m = look.snap.memo
	}
	if m == nil || caller == nil {
		return e.evaluateOver(ctx, e.timeout, plain)
	}
	key := m.key(caller)
	values, ok := m.values.Get(key)
	if !ok {
		rs, snap, err := e.evaluateOver(ctx, e.timeout, func(s *snapshot) (preparedQuery, ast.Value) {
			if s.memo != m {
				return plain(s)
			}
			return m.memo, input
		})
		if snap == nil || snap.memo != m || err != nil {
			if err == nil {
				return rs, snap, nil // the decision of a newer policy
			}
			// The memo's rules failed (an error OPA reports, a timeout):
			// the whole decision, evaluated plainly, says what that means.
			return e.evaluateOver(ctx, e.timeout, plain)
		}
		v, err := resultValue(rs)
		if err != nil {
			return e.evaluateOver(ctx, e.timeout, plain)
		}
		values = v
		m.values.Add(key, values)
	}
	// A lazy object, as the input itself: a strict one would hash its
	// values, converting the whole input (and reading every argument).
	wrapped := ast.LazyObject(map[string]any{"real": input, "memo": values})
	return e.evaluateOver(ctx, e.timeout, func(s *snapshot) (preparedQuery, ast.Value) {
		if s.memo != m {
			return plain(s)
		}
		return m.decision, wrapped
	})
}
