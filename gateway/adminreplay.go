package gateway

import (
	"context"
	"errors"
	"fmt"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/replay"
)

// replayParams are the query parameters of POST /admin/v1/policy/replay.
var replayParams = []string{"since", "until", "backend", "agent", "subject", "tool", "baseline", "top"}

// handleReplay is POST /admin/v1/policy/replay: the body is a candidate
// bundle (application/gzip, as opa build writes it), checked as the
// gateway checks its own policy (policy.max_bundle_* limits; a signature
// verified with policy.verification_key unless policy.allow_unsigned), and
// the recorded decisions the query selects are replayed with it; the
// answer is the report `mcpgw policy replay --json` prints. No path or URL
// is ever taken from the caller: the gateway reads nothing but the body.
// baseline=active also replays with the gateway's active policy.
// Authorized as action replay on kind policy.
func (a *adminAPI) handleReplay(c *fiber.Ctx) error {
	p, ok := a.authenticate(c)
	if !ok {
		return nil
	}
	if _, ok := a.authorize(c, p, "replay", "policy", "", nil); !ok {
		return nil
	}
	f, baseline, top, problems := parseReplayQuery(c)
	if len(problems) > 0 {
		return invalid(c, problems)
	}
	if mt, _, err := mime.ParseMediaType(c.Get(fiber.HeaderContentType)); err != nil || (mt != "application/gzip" && mt != "application/x-gzip") {
		return adminError(c, fiber.StatusUnsupportedMediaType, "invalid_request",
			"send the candidate bundle (opa build's .tar.gz) as the body with Content-Type: application/gzip", nil)
	}
	cfg := a.s.policyConfig
	body := c.Body()
	limits := policy.BundleLimits{Bytes: cfg.MaxBundleBytes, UncompressedBytes: cfg.MaxBundleUncompressedBytes,
		Files: cfg.MaxBundleFiles, FileBytes: cfg.MaxBundleFileBytes}
	if maxBytes := cfg.MaxBundleBytes; maxBytes > 0 && int64(len(body)) > maxBytes {
		return adminError(c, fiber.StatusRequestEntityTooLarge, "invalid_request",
			fmt.Sprintf("the candidate bundle exceeds policy.max_bundle_bytes (%d bytes)", maxBytes), nil)
	}
	if len(body) == 0 {
		return invalid(c, []string{"the body must be the candidate bundle"})
	}
	dir, err := os.MkdirTemp("", "mcpgw-replay-")
	if err != nil {
		return a.internal(c, "replay: temporary directory", err)
	}
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "candidate.tar.gz")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		return a.internal(c, "replay: write candidate", err)
	}
	ctx := c.UserContext()
	cand, err := replay.LoadPolicy(ctx, replay.PolicyOptions{
		Source: path, VerificationKey: cfg.VerificationKey, KeyID: cfg.KeyID,
		AllowUnsigned: cfg.AllowUnsigned, Limits: limits,
	})
	if err != nil {
		// The bundle's own fault: unsigned, not verifying, over a limit,
		// not compiling. The message names no path but the temporary one.
		msg := strings.ReplaceAll(err.Error(), path, "(request body)")
		return invalid(c, []string{"candidate bundle: " + msg})
	}
	defer cand.Stop(context.WithoutCancel(ctx))
	items, err := replay.FromStore(ctx, a.s.Store, f)
	if err != nil {
		return a.internal(c, "replay: read recorded decisions", err)
	}
	o := replay.Options{Candidate: cand, Top: top}
	if baseline {
		o.Baseline = a.s.Engine
	}
	report := replay.Run(ctx, o, items)
	a.log.Info("policy replay", "subject", p.Subject, "candidate", report.Candidate, "records", report.Records,
		"allow_to_deny", report.Counts.AllowToDeny, "deny_to_allow", report.Counts.DenyToAllow, "reasons_changed", report.Counts.Reasons,
		"request_id", requestID(c))
	return adminJSON(c, fiber.StatusOK, report)
}

func parseReplayQuery(c *fiber.Ctx) (f replay.Filter, baseline bool, top int, problems []string) {
	top = 10
	sinceGiven := false
	problems = visitQuery(c, replayParams, func(key, val string) string {
		switch key {
		case "backend":
			f.Backend = val
		case "agent":
			f.Agent = val
		case "subject":
			f.Subject = val
		case "tool":
			f.Tool = val
		case "baseline":
			baseline = true
			if val != "active" {
				return fmt.Sprintf("query parameter baseline: want active, got %q", truncate(val, 32))
			}
		case "top":
			var n int
			if _, err := fmt.Sscan(val, &n); err != nil || n < 1 || n > 1000 {
				return fmt.Sprintf("query parameter top: want an integer from 1 to 1000, got %q", truncate(val, 32))
			}
			top = n
		case "since", "until":
			t, err := replayTime(val)
			if key == "since" {
				f.Since, sinceGiven = t, true
			} else {
				f.Until = t
			}
			if err != nil {
				return "query parameter " + key + ": " + err.Error()
			}
		}
		return ""
	})
	if !sinceGiven {
		f.Since = time.Now().Add(-24 * time.Hour)
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		problems = append(problems, "query parameter since: not before until")
	}
	return f, baseline, top, problems
}

// replayTime reads since and until: a duration back from now (24h) or an
// RFC 3339 time.
func replayTime(val string) (time.Time, error) {
	if d, err := time.ParseDuration(val); err == nil && d >= 0 {
		return time.Now().Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, val)
	if err != nil {
		return time.Time{}, errors.New("want a duration such as 24h or an RFC 3339 time such as 2026-01-02T15:04:05Z")
	}
	return t, nil
}
