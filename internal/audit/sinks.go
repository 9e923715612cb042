package audit

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Appender is the part of the store a store sink needs.
type Appender interface {
	AppendAudit(ctx context.Context, recs ...Record) error
}

// NewStoreSink batches records into the store. Failed batches are retried
// (the store may be restarting) unless the store calls them invalid.
func NewStoreSink(a Appender, opts BatchOptions) *BatchSink {
	return newBatchSink("store", func(ctx context.Context, batch []Record) error {
		err := a.AppendAudit(ctx, batch...)
		if errors.Is(err, ErrInvalidRecord) {
			return backoff.Permanent(err)
		}
		return err
	}, opts)
}

// NewJSONLinesSink writes each record as one line of JSON to w (typically
// os.Stdout). A batch goes out in one Write; a failed Write is not retried,
// since part of it may have landed and a retry would duplicate lines.
func NewJSONLinesSink(w io.Writer, opts BatchOptions) *BatchSink {
	return newBatchSink("jsonlines", func(_ context.Context, batch []Record) error {
		var buf bytes.Buffer
		enc := json.NewEncoder(&buf)
		for _, r := range batch {
			if err := enc.Encode(r); err != nil {
				return backoff.Permanent(fmt.Errorf("encode audit record %s: %w", r.ID, err))
			}
		}
		if _, err := w.Write(buf.Bytes()); err != nil {
			return backoff.Permanent(fmt.Errorf("write audit lines: %w", err))
		}
		return nil
	}, opts)
}

// HTTPOptions configures an HTTP sink.
type HTTPOptions struct {
	// URL receives POSTs whose body is a JSON array of records, as OPA's
	// decision log plugin posts its events.
	URL string
	// Headers are added to every request (e.g. Authorization for the
	// collector); their values are never logged.
	Headers map[string]string
	// Gzip compresses bodies (Content-Encoding: gzip).
	Gzip bool
	// Client defaults to one with a 10s timeout.
	Client *http.Client
	Batch  BatchOptions
}

// maxRetryAfter caps a collector's Retry-After so one answer cannot stall the
// sink for longer than a normal backoff would.
const maxRetryAfter = time.Minute

// NewHTTPSink posts batches to a collector. 408, 429, 5xx and network errors
// are retried with exponential backoff (honouring Retry-After); other statuses
// drop the batch, counted.
func NewHTTPSink(o HTTPOptions) (*BatchSink, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return nil, fmt.Errorf("audit http sink: url: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("audit http sink: url %q: want an absolute http(s) URL", safeURL(u))
	}
	client := o.Client
	if client == nil {
		client = &http.Client{Timeout: 10 * time.Second}
	}
	target := o.URL
	shown := safeURL(u)
	headers := make(map[string]string, len(o.Headers))
	for k, v := range o.Headers {
		headers[k] = v
	}
	return newBatchSink("http", func(ctx context.Context, batch []Record) error {
		body, err := encodeBatch(batch, o.Gzip)
		if err != nil {
			return backoff.Permanent(err)
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, bytes.NewReader(body))
		if err != nil {
			return backoff.Permanent(fmt.Errorf("POST %s: %w", shown, err))
		}
		req.Header.Set("Content-Type", "application/json")
		if o.Gzip {
			req.Header.Set("Content-Encoding", "gzip")
		}
		for k, v := range headers {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			// *url.Error repeats the full URL; report the scrubbed one.
			var uerr *url.Error
			if errors.As(err, &uerr) {
				err = uerr.Err
			}
			return fmt.Errorf("POST %s: %w", shown, err)
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
		switch code := resp.StatusCode; {
		case code >= 200 && code < 300:
			return nil
		case code == http.StatusTooManyRequests || code == http.StatusRequestTimeout || code >= 500:
			err := fmt.Errorf("POST %s: status %d", shown, code)
			if secs, perr := strconv.Atoi(resp.Header.Get("Retry-After")); perr == nil && secs > 0 {
				secs = min(secs, int(maxRetryAfter/time.Second))
				return fmt.Errorf("%w: %w", err, backoff.RetryAfter(secs))
			}
			return err
		default:
			return backoff.Permanent(fmt.Errorf("POST %s: status %d", shown, code))
		}
	}, o.Batch), nil
}

func encodeBatch(batch []Record, gz bool) ([]byte, error) {
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if gz {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	if err := json.NewEncoder(w).Encode(batch); err != nil {
		return nil, fmt.Errorf("encode audit batch: %w", err)
	}
	if zw != nil {
		if err := zw.Close(); err != nil {
			return nil, fmt.Errorf("gzip audit batch: %w", err)
		}
	}
	return buf.Bytes(), nil
}

// safeURL drops userinfo and query, which may carry credentials, from a URL
// shown in errors and logs.
func safeURL(u *url.URL) string {
	c := *u
	c.User = nil
	c.RawQuery = ""
	c.ForceQuery = false
	c.Fragment = ""
	return c.String()
}
