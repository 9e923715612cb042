package store

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"reflect"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/audit"
	"github.com/mcpgw/mcpgw/internal/store/storetest"
)

// auditBatchSizes are batch sizes the write paths treat differently: one
// row, pieces of powers of two and sums of them, SQLite's largest piece
// (auditMaxPiece) and one more, PostgreSQL's multi-row INSERT (fewer than
// auditArrayMin) and arrays, a whole array chunk (auditArrayChunk) and one
// more.
var auditBatchSizes = []int{1, 2, 3, 4, 15, 16, 17, 200, auditMaxPiece - 1, auditMaxPiece, auditMaxPiece + 1,
	2*auditMaxPiece + 37, auditArrayChunk, auditArrayChunk + 1}

// fullRecord is the i-th record of a batch with every column that its
// variant has filled, values differing from record to record.
func fullRecord(prefix string, i int, outcome, input bool) audit.Record {
	r := audit.Record{
		ID:   fmt.Sprintf("%s-%04d", prefix, i),
		Time: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC).Add(time.Duration(i)*time.Millisecond + 123456789),
		Kind: audit.KindDecision, DecisionID: "dec-" + strconv.Itoa(i), RequestID: "req-" + strconv.Itoa(i),
		Subject: "sübject-" + strconv.Itoa(i%7), Issuer: "https://idp.example.com", Agent: "agent-" + strconv.Itoa(i%3),
		Backend: "backend-" + strconv.Itoa(i%5), Method: "tools/call", Tool: "tool_" + strconv.Itoa(i%11),
		Allow: i%2 == 0, Revision: "rev-" + strconv.Itoa(i%4), LatencyMS: float64(i) + 0.25, EvalMicros: int64(i * 3),
	}
	if i%3 != 0 {
		r.Reasons = []string{"reason " + strconv.Itoa(i), "ünïcode \"quoted\""}
	}
	if i%4 == 1 {
		r.Kind, r.Allow, r.Source, r.Action = audit.KindChange, true, audit.SourceAdmin, audit.ActionUpdate
		r.Method, r.Tool = "", ""
		r.ObjectKind, r.ObjectName = audit.ObjectBackend, "backend-"+strconv.Itoa(i)
		r.Before = json.RawMessage(`{"url":"https://a/` + strconv.Itoa(i) + `","paths":["/a"]}`)
		r.After = json.RawMessage(`{"url":"https://b","labels":{"k":"v"}}`)
	}
	if outcome && r.Kind == audit.KindDecision && i%5 != 2 {
		r.Outcome = []string{"ok", "denied", "backend_error"}[i%3]
	}
	if input && r.Kind == audit.KindDecision && i%5 != 3 {
		r.Input = json.RawMessage(`{"version":1,"n":12345678901234567890,"i":` + strconv.Itoa(i) + `,"s":"\u00fc"}`)
		if i%2 == 0 {
			r.InputMasked = []string{"/input/token/claims", "/input/" + strconv.Itoa(i)}
		}
	}
	return r
}

// Every batch size and column variant the write path distinguishes reads
// back field for field as given (normalized), in both databases.
func TestAuditBatchRoundTrip(t *testing.T) {
	runOnEveryDatabase(t, []conformanceCase{{name: "batches read back", run: testAuditBatchRoundTrip}})
}

func testAuditBatchRoundTrip(t *testing.T, b dbUnderTest) {
	s := openTest(t, b.newDSN(t))
	ctx := context.Background()
	var want []audit.Record
	for _, n := range auditBatchSizes {
		for _, v := range []struct{ outcome, input bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
			prefix := fmt.Sprintf("n%d-o%t-i%t", n, v.outcome, v.input)
			batch := make([]audit.Record, n)
			for i := range batch {
				batch[i] = fullRecord(prefix, i, v.outcome, v.input)
			}
			if err := s.AppendAudit(ctx, batch...); err != nil {
				t.Fatalf("%s: %v", prefix, err)
			}
			// Written twice: the second batch is skipped as a whole.
			if err := s.AppendAudit(ctx, batch...); err != nil {
				t.Fatalf("%s again: %v", prefix, err)
			}
			for _, r := range batch {
				want = append(want, r.Normalize())
			}
		}
	}
	// Of two records with one id in a batch, the first is kept.
	for _, n := range []int{2, 3, 4, auditMaxPiece + 1} {
		batch := make([]audit.Record, n)
		for i := range batch {
			batch[i] = fullRecord(fmt.Sprintf("dup%d", n), i, true, true)
		}
		batch[n-1].ID = batch[0].ID
		if err := s.AppendAudit(ctx, batch...); err != nil {
			t.Fatalf("dup%d: %v", n, err)
		}
		for _, r := range batch[:n-1] {
			want = append(want, r.Normalize())
		}
	}
	if n := countRows(t, s, "audit_records"); n != len(want) {
		t.Fatalf("%d rows stored, want %d", n, len(want))
	}
	got := map[string]audit.Record{}
	cursor := ""
	for {
		page, next, err := s.QueryAudit(ctx, audit.Query{IncludeInput: true, Limit: audit.MaxLimit, Cursor: cursor})
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range page {
			got[r.ID] = r
		}
		if next == "" {
			break
		}
		cursor = next
	}
	if len(got) != len(want) {
		t.Fatalf("read back %d records, want %d", len(got), len(want))
	}
	for _, w := range want {
		g, ok := got[w.ID]
		if !ok {
			t.Errorf("%s not read back", w.ID)
			continue
		}
		// PostgreSQL's jsonb keeps the value, not the text.
		jsonEq(t, w.ID+" before", g.Before, w.Before)
		jsonEq(t, w.ID+" after", g.After, w.After)
		g.Before, g.After, w.Before, w.After = nil, nil, nil, nil
		if !reflect.DeepEqual(g, w) {
			t.Errorf("round trip of %s:\n got  %+v\n want %+v", w.ID, g, w)
		}
	}
}

// BenchmarkAppendAudit writes batches of decision records as the gateway's
// BatchSink does (256 is its default MaxBatch): ns/record and allocs/record
// are per stored record.
func BenchmarkAppendAudit(b *testing.B) {
	type db struct {
		name string
		dsn  func(b *testing.B) string
	}
	dbs := []db{{"sqlite-memory", func(*testing.B) string { return ":memory:" }}}
	if base := storetestBase(); base != "" {
		dbs = append(dbs, db{"postgres", func(b *testing.B) string {
			base, ok := storetest.PostgresBase(b)
			if !ok {
				b.SkipNow()
			}
			return storetest.SchemaDSN(b, base)
		}})
	}
	for _, d := range dbs {
		for _, n := range []int{1, 16, 200, 256} {
			b.Run(fmt.Sprintf("%s/batch=%d", d.name, n), func(b *testing.B) {
				s, err := Open(context.Background(), d.dsn(b))
				if err != nil {
					b.Fatal(err)
				}
				defer s.Close()
				ctx := context.Background()
				batch := make([]audit.Record, n)
				for i := range batch {
					batch[i] = fullRecord("", i, true, false)
					batch[i].Kind, batch[i].Source, batch[i].Action, batch[i].ObjectKind, batch[i].ObjectName = audit.KindDecision, "", "", "", ""
					batch[i].Before, batch[i].After = nil, nil
				}
				// The table is emptied (untimed) every benchTableRows
				// records, so that every batch size writes into a table of
				// the same sizes.
				seq, stored := 0, 0
				var m0, m1, d0, d1 runtime.MemStats
				var untimedMallocs uint64
				runtime.ReadMemStats(&m0)
				cpu0 := processCPU(b)
				for b.Loop() {
					if stored >= benchTableRows {
						b.StopTimer()
						runtime.ReadMemStats(&d0)
						if _, err := s.(*sqlStore).db.ExecContext(ctx, "DELETE FROM audit_records"); err != nil {
							b.Fatal(err)
						}
						runtime.ReadMemStats(&d1)
						untimedMallocs += d1.Mallocs - d0.Mallocs
						stored = 0
						b.StartTimer()
					}
					for i := range batch {
						seq++
						batch[i].ID = "bench-" + strconv.Itoa(seq) // one allocation per record
					}
					if err := s.AppendAudit(ctx, batch...); err != nil {
						b.Fatal(err)
					}
					stored += n
				}
				elapsed := b.Elapsed()
				cpu := processCPU(b) - cpu0
				runtime.ReadMemStats(&m1)
				b.ReportMetric(float64(elapsed.Nanoseconds())/float64(seq), "ns/record")
				b.ReportMetric(float64(m1.Mallocs-m0.Mallocs-untimedMallocs)/float64(seq), "allocs/record")
				// The process's CPU time (user and system, every thread,
				// the untimed emptying included): what the gateway spends,
				// where ns/record also counts waiting for PostgreSQL.
				b.ReportMetric(float64(cpu.Nanoseconds())/float64(seq), "cpu-ns/record")
			})
		}
	}
}

// processCPU is the CPU time the process has used so far.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchTableRows bounds the audit table the benchmark writes to.
const benchTableRows = 20000

// storetestBase is the PostgreSQL server the benchmark uses: TEST_POSTGRES
// when set (and not "off"); benchmarks run on SQLite alone otherwise.
func storetestBase() string {
	if v := os.Getenv("TEST_POSTGRES"); v != "off" {
		return v
	}
	return ""
}
