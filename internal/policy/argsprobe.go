package policy

import (
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Decisions cached by whether they read the arguments.
//
// Two tools/call messages from one caller to one tool mostly differ in
// their arguments alone, and most decisions never look at them (the
// shipped policy reads an argument only where data.mcpgw.argument_rules or
// a confirm obligation names the tool). Keyed by the whole input, the
// decision cache missed every such call; keyed by the input without the
// arguments, it answers them all, but only for a decision that provably
// did not read them.
//
// The proof is the lazy input (input.go). OPA converts a field of a
// LazyObject the first time a rule reads it (Get, Find), and converts all
// of them when the object is compared, hashed, iterated or printed
// (force). A value that ast.InterfaceToValue has no case for is converted
// by a JSON round trip (util.RoundTrip), which calls its MarshalJSON. So
// input.mcp.arguments is an argumentsProbe: any conversion of it is a call
// to MarshalJSON, which records the read. What the object exposes without
// a conversion is its key set (Keys, Len): "arguments" is always there.
//
// The one other way to reach it is ast.ValueToInterface (ast.JSON) over
// input.mcp or input, which hands out the lazy object's Go map itself,
// probe included. TestArgumentsProbeOPACallSites pins every call site in
// the OPA version this module builds with; each either encodes the value
// with encoding/json (which calls MarshalJSON: a read) or cannot tell a
// probe from the plain map it replaces (urlquery.encode_object refuses
// both; the x509 options read only keys). An OPA upgrade that adds a call
// site fails that test until it is checked the same way.
//
// A decision is remembered under the argument-free key only if, after the
// evaluation and a walk of the decision's value (which forces any lazy
// object the value holds), the probe was not read. Evaluation is a function
// of what it reads: two inputs equal but for their arguments, of which the
// first evaluation read nothing, evaluate alike.

// argumentsProbe stands for input.mcp.arguments in the lazy input of a
// decision and records whether the evaluation converted it. It is a value,
// not a pointer, with a value receiver: util.RoundTrip dereferences
// pointers before encoding, and encoding/json would then skip a pointer
// receiver's MarshalJSON and write {} (TestArgumentsProbe caught this).
type argumentsProbe struct {
	// value is the arguments as callInput puts them in the input: a
	// JSON-shaped map or an ast.Value (anyObject).
	value any
	read  *atomic.Bool
}

// MarshalJSON is how OPA converts the probe: it encodes the value that
// plain arguments would have become (ast.InterfaceToValue of the same Go
// value), so the round trip gives the policy exactly that value: numbers
// keep their text, strings their bytes (the gateway's messages are valid
// UTF-8: ijson refuses anything else, and encoding/json would replace it).
func (p argumentsProbe) MarshalJSON() ([]byte, error) {
	p.read.Store(true)
	v, err := ast.InterfaceToValue(p.value)
	if err != nil {
		return nil, fmt.Errorf("input mcp.arguments: %w", err)
	}
	native, err := ast.JSON(v)
	if err != nil {
		return nil, fmt.Errorf("input mcp.arguments: %w", err)
	}
	return json.Marshal(native)
}

// wasRead reports whether anything converted the arguments.
// A zero probe (no evaluation was probed) counts as read.
func (p argumentsProbe) wasRead() bool {
	return p.read == nil || p.read.Load()
}

// forceAll walks v, converting every lazy object in it: a decision value
// that holds part of the input (an object rule returning input.mcp, say)
// must not be remembered with arguments it never looked at but will hand
// on to whoever reads the value later. OPA itself hashes a value it puts
// into an object, array or set, which converts it (measured with v1.22.3:
// TestArgumentsProbeDecisionHoldingInput passes without this walk); the
// walk keeps that from being an assumption.
func forceAll(v ast.Value) {
	switch x := v.(type) {
	case ast.Object:
		x.Foreach(func(k, e *ast.Term) {
			forceAll(k.Value)
			forceAll(e.Value)
		})
	case *ast.Array:
		x.Foreach(func(e *ast.Term) { forceAll(e.Value) })
	case ast.Set:
		x.Foreach(func(e *ast.Term) { forceAll(e.Value) })
	}
}
