package policy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/util"
)

// DecideInput evaluates data.mcp.gateway.decision over an input document
// as recorded (a Record's Input, or an OPA decision-log event's input),
// for `mcpgw policy replay`. Unlike Decide it writes no record, skips the
// decision cache, OPA's decision logs and the shadow policy, and takes the
// input as it is: numbers stay exact and fields the gateway does not know
// reach the policy unchanged. Failures deny as in Decide, with a reason
// that starts with "policy engine error: ".
func (e *Engine) DecideInput(ctx context.Context, input json.RawMessage) Decision {
	d := Decision{Reasons: []string{}}
	v, err := parseRecordedInput(input)
	if err == nil {
		res, snap, evalErr := e.evaluate(ctx, func(s *snapshot) preparedQuery { return s.decision }, v)
		if snap != nil {
			d.Revision = snap.revision
		}
		err = evalErr
		if err == nil {
			var value ast.Value
			value, err = resultValue(res)
			if errors.Is(err, errUndefined) {
				err = errors.New(decisionRule + " is undefined")
			}
			applyVerdict(&d, value, err, e.compiledPatterns())
			return d
		}
	}
	applyVerdict(&d, nil, err, e.compiledPatterns())
	return d
}

// parseRecordedInput reads a recorded input with exact numbers.
func parseRecordedInput(raw json.RawMessage) (ast.Value, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, errors.New("no input")
	}
	var doc any
	dec := util.NewJSONDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("recorded input: %w", err)
	}
	v, err := ast.InterfaceToValue(doc)
	if err != nil {
		return nil, fmt.Errorf("recorded input: %w", err)
	}
	return v, nil
}
