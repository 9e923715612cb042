package policy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	bundleplugin "github.com/open-policy-agent/opa/v1/plugins/bundle"
)

// Status is what the engine tells /readyz about its policy.
type Status struct {
	// Ready is false when no policy can decide; Error says why.
	Ready bool   `json:"ready"`
	Error string `json:"error,omitempty"`
	// Revision is the active policy's revision; ActivatedAt when it became active.
	Revision    string    `json:"revision,omitempty"`
	ActivatedAt time.Time `json:"activated_at,omitzero"`
	// Source is the policy source (a URL without credentials or query).
	Source string `json:"source"`
	// SignatureVerified is false only with allow_unsigned and no key.
	SignatureVerified bool `json:"signature_verified"`
	// LastRejected is the latest bundle that failed to download, verify,
	// parse or compile, and why; the active policy kept serving.
	LastRejected   string    `json:"last_rejected,omitempty"`
	LastRejectedAt time.Time `json:"last_rejected_at,omitzero"`
	// Shadow is the shadow policy's own status, when one is configured.
	Shadow *ShadowStatus `json:"shadow,omitempty"`
}

// ShadowStatus reports the shadow policy and what it has compared.
type ShadowStatus struct {
	Status
	ShadowStats
}

// activation is one policy becoming active.
type activation struct {
	revision string
	at       time.Time
}

// lifecycle tracks the engine's policy source: what is active, what was last
// rejected, and who is told about activations.
type lifecycle struct {
	kind     sourceKind
	source   string
	verified bool
	// remote names the bundles OPA's bundle plugin downloads.
	remote []string

	// latest is the newest activation; pending wakes the announcer.
	mu             sync.Mutex
	latest         *activation
	announced      *activation
	lastRejected   error
	lastRejectedAt time.Time
	// reported holds the remote bundles the bundle plugin has reported on
	// at least once; firstReports closes when all have.
	reported     map[string]bool
	firstReports chan struct{}

	pending chan struct{}
}

func newLifecycle(kind sourceKind, source string) *lifecycle {
	return &lifecycle{
		kind: kind, source: source,
		reported:     map[string]bool{},
		firstReports: make(chan struct{}),
		pending:      make(chan struct{}, 1),
	}
}

// activated records a new activation; the announcer tells the logger and
// Options.OnActivate. It runs inside the store commit that activated the
// policy, so it must not block or evaluate: it only wakes the announcer.
func (e *Engine) activated(snap *snapshot) {
	if e.life == nil || snap == nil || snap.revision == "" {
		return
	}
	e.life.mu.Lock()
	e.life.latest = &activation{revision: snap.revision, at: time.Now()}
	e.life.mu.Unlock()
	select {
	case e.life.pending <- struct{}{}:
	default:
	}
}

// announce delivers activations in order, newest last; a burst of
// activations may be announced as its last one only.
func (e *Engine) announce(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-e.life.pending:
		}
		e.life.mu.Lock()
		a := e.life.latest
		fresh := a != nil && a != e.life.announced
		e.life.announced = a
		e.life.mu.Unlock()
		if !fresh {
			continue
		}
		if e.life.verified {
			e.logger.Info("policy activated", "revision", a.revision, "source", e.life.source)
		} else {
			e.logger.Warn("policy activated WITHOUT a verified signature (allow_unsigned: development only)", "revision", a.revision, "source", e.life.source)
		}
		if e.opts.OnActivate != nil {
			e.opts.OnActivate(a.revision, a.at)
		}
	}
}

// reject records a policy that was not activated; the active one (if any)
// keeps serving.
func (e *Engine) reject(err error) {
	e.life.mu.Lock()
	e.life.lastRejected, e.life.lastRejectedAt = err, time.Now()
	e.life.mu.Unlock()
	e.logger.Error("policy rejected; the active policy keeps serving", "active_revision", e.Revision(), "source", e.life.source, "error", err)
	if e.opts.OnReject != nil {
		e.opts.OnReject()
	}
}

// onBundleStatus receives OPA's bundle plugin status after every download
// attempt.
func (e *Engine) onBundleStatus(s bundleplugin.Status) {
	failed := s.Code != "" || s.Message != "" || len(s.Errors) > 0
	// The download guard paces what follows a rejection; a rejected bundle
	// found unchanged is not a new rejection, and LastRejected keeps saying
	// why it was rejected.
	if news := e.guard.report(s, failed); failed && news {
		e.reject(fmt.Errorf("bundle %s: %s", s.Name, describeBundleError(s)))
	}
	e.life.mu.Lock()
	defer e.life.mu.Unlock()
	if e.life.reported[s.Name] {
		return
	}
	e.life.reported[s.Name] = true
	for _, name := range e.life.remote {
		if !e.life.reported[name] {
			return
		}
	}
	close(e.life.firstReports)
}

func describeBundleError(s bundleplugin.Status) string {
	parts := make([]string, 0, 1+len(s.Errors))
	if s.Message != "" {
		parts = append(parts, s.Message)
	}
	for _, err := range s.Errors {
		parts = append(parts, err.Error())
	}
	if len(parts) == 0 {
		parts = append(parts, s.Code)
	}
	return strings.Join(parts, ": ")
}

// awaitFirstBundles waits until OPA's bundle plugin has tried every remote
// bundle once, so that a gateway that can download its policy starts
// with it, and one that cannot starts at once (denying, and saying why).
func (e *Engine) awaitFirstBundles(ctx context.Context, limit time.Duration) {
	timer := time.NewTimer(limit)
	defer timer.Stop()
	select {
	case <-e.life.firstReports:
	case <-timer.C:
	case <-ctx.Done():
	}
}

// noPolicy says why no policy is active, for Ready and Status: the last
// failed attempt may name the bundle server and its error.
func (e *Engine) noPolicy() error {
	if e == nil || e.life == nil {
		return errNoPolicy
	}
	e.life.mu.Lock()
	rejected := e.life.lastRejected
	e.life.mu.Unlock()
	switch {
	case rejected != nil:
		return fmt.Errorf("%w: no verified policy bundle yet; last attempt: %w", errNoPolicy, rejected)
	case e.life.kind.remote():
		return fmt.Errorf("%w: waiting for the first verified bundle from %s", errNoPolicy, e.life.source)
	}
	return errNoPolicy
}

// errNoBundle is the denial reason while no bundle has arrived. Unlike
// noPolicy it names no server or error: reasons reach the caller.
var errNoBundle = fmt.Errorf("%w: no verified policy bundle yet", errNoPolicy)

// Status reports the active policy, the last rejected one and the shadow.
func (e *Engine) Status() Status {
	if e == nil || e.life == nil {
		return Status{Error: errNotStarted.Error()}
	}
	st := Status{Revision: e.Revision(), Source: e.life.source, SignatureVerified: e.life.verified}
	if err := e.Ready(); err != nil {
		st.Error = err.Error()
	} else {
		st.Ready = true
	}
	e.life.mu.Lock()
	if e.life.latest != nil && e.life.latest.revision == st.Revision {
		st.ActivatedAt = e.life.latest.at.UTC()
	}
	if e.life.lastRejected != nil {
		st.LastRejected, st.LastRejectedAt = e.life.lastRejected.Error(), e.life.lastRejectedAt.UTC()
	}
	e.life.mu.Unlock()
	if e.shadow != nil {
		st.Shadow = &ShadowStatus{Status: e.shadow.engine.Status(), ShadowStats: e.shadow.stats()}
	}
	return st
}
