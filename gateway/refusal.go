package gateway

import (
	"context"
	"time"

	"github.com/google/uuid"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/identity"
)

// refusal is a request the gateway turned away before the policy could
// decide it (a body that is not I-JSON, an ambiguous path or argument). It
// is audited like a denial, so that the trail shows every attempt of an
// authenticated caller, not only the well-formed ones.
type refusal struct {
	// rec is the request's record, which counts the refusal.
	rec       *requestRecord
	principal *identity.Principal
	requestID string
	agent     string
	backend   string
	method    string
	target    string
	reason    string
}

func (cl *call) refusal(method, target, reason string) refusal {
	return refusal{rec: cl.rec, principal: cl.principal, requestID: cl.requestID, agent: cl.agent.ID(), backend: cl.route.backend.Name,
		method: method, target: target, reason: reason}
}

// recordRefusal audits a refusal; the request log line (requestlog.go) says
// it too, with the decision id of its audit record.
func (g *Gateway) recordRefusal(ctx context.Context, r refusal) {
	id := uuid.NewString()
	r.rec.refusal(id)
	if g.opts.Audit == nil {
		return
	}
	g.opts.Audit(ctx, audit.Record{
		Time: time.Now().UTC(), Kind: audit.KindDecision, DecisionID: id, RequestID: r.requestID,
		Subject: r.principal.Subject, Issuer: r.principal.Issuer, Agent: r.agent, Backend: r.backend, Method: r.method, Tool: r.target,
		Allow: false, Reasons: []string{"refused by the gateway before policy: " + r.reason},
	})
}
