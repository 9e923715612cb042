package policy

import (
	"context"
	"errors"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/plugins/logs"
	"github.com/open-policy-agent/opa/v1/server"
)

// decisionPath is how OPA's decision logs name the gateway's decision.
const decisionPath = "mcp/gateway/decision"

// logToOPA hands one call decision to OPA's decision-log plugin when
// policy.opa.decision_logs configures it (console, a remote service, or
// both). The plugin applies data.system.log.mask and drop from the active
// policy, as in OPA. The engine's own Record is emitted regardless.
func (e *Engine) logToOPA(ctx context.Context, plugin *logs.Plugin, in *Input, result ast.Value, d Decision) {
	input, err := callInput(in)
	if err != nil {
		e.logger.Error("OPA decision log: build input", "decision_id", d.ID, "error", err)
		return
	}
	inputJSON, err := ast.JSON(input)
	if err != nil {
		e.logger.Error("OPA decision log: encode input", "decision_id", d.ID, "error", err)
		return
	}
	info := &server.Info{
		DecisionID: d.ID,
		Path:       decisionPath,
		Timestamp:  time.Now().UTC(),
		Input:      &inputJSON,
		InputAST:   input,
		RemoteAddr: in.HTTP.RemoteAddr,
		Bundles:    e.bundleInfo(d.Revision),
	}
	if result != nil {
		if resultJSON, err := ast.JSON(result); err == nil {
			info.Results = &resultJSON
		}
	}
	if len(d.Reasons) > 0 && strings.HasPrefix(d.Reasons[0], engineErrorPrefix) {
		info.Error = errors.New(d.Reasons[0])
	}
	if err := plugin.Log(ctx, info); err != nil {
		e.logger.Error("OPA decision log", "decision_id", d.ID, "error", err)
	}
}

// engineErrorPrefix starts the reason of every deny that is an engine failure.
const engineErrorPrefix = "policy engine error: "

// bundleInfo names the bundles that made a decision, in the form of OPA's
// decision logs, from the revision readRevision gave the snapshot: the
// bare revision of the only bundle, or name=revision pairs.
func (e *Engine) bundleInfo(revision string) map[string]server.BundleInfo {
	if revision == "" {
		return nil
	}
	names := e.life.remote
	if len(names) <= 1 {
		name := bundleName
		if len(names) == 1 {
			name = names[0]
		}
		return map[string]server.BundleInfo{name: {Revision: revision}}
	}
	out := make(map[string]server.BundleInfo, len(names))
	for pair := range strings.SplitSeq(revision, ",") {
		if name, rev, ok := strings.Cut(pair, "="); ok {
			out[name] = server.BundleInfo{Revision: rev}
		}
	}
	return out
}

// afterDecide hands a call decision to OPA's decision logs and to the
// shadow policy, when they are configured.
func (e *Engine) afterDecide(ctx context.Context, in *Input, result ast.Value, d Decision) {
	if e == nil {
		return
	}
	if e.opaLogs != nil {
		e.logToOPA(ctx, e.opaLogs, in, result, d)
	}
	if e.shadow != nil && !e.stopped.Load() {
		e.shadow.submit(in, d)
	}
}
