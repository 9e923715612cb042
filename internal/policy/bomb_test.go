package policy

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgw/mcpgw/internal/policy/policytest"
	"github.com/mcpgw/mcpgw/internal/testutil"
)

// gzipBomb is a bundle (.tar.gz) of files data files of size zero bytes
// each, as an attacker crafts one: tiny compressed, huge expanded.
//
// Zeros are streamed through gzip one MiB at a time, and each MiB's gzip
// member (about a KiB) is repeated: a gzip file may hold many members, which
// every reader (Go's, OPA's) expands as one stream. Building a bomb that
// expands to several GB so costs the test a few milliseconds and a few MB.
func gzipBomb(t testing.TB, files int, size int64) []byte {
	t.Helper()
	var out bytes.Buffer
	member := func(p []byte) {
		zw, err := gzip.NewWriterLevel(&out, gzip.BestCompression)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := zw.Write(p); err != nil {
			t.Fatal(err)
		}
		if err := zw.Close(); err != nil {
			t.Fatal(err)
		}
	}
	const chunk = 1 << 20
	zeros := make([]byte, chunk)
	member(zeros)
	zeroMember := bytes.Clone(out.Bytes())
	out.Reset()
	writeZeros := func(n int64) {
		for ; n >= chunk; n -= chunk {
			out.Write(zeroMember)
		}
		if n > 0 {
			member(zeros[:n])
		}
	}
	for i := range files {
		var hdr bytes.Buffer
		tw := tar.NewWriter(&hdr)
		if err := tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("/d%d/data.json", i), Mode: 0o644, Size: size, Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		member(hdr.Bytes())
		// The file, then the zero padding to the next 512-byte block.
		writeZeros(size + (512-size%512)%512)
	}
	writeZeros(1024) // the end-of-archive marker
	return out.Bytes()
}

// watchHeap samples the heap in use until the returned function is called,
// which returns the largest growth over the heap in use at the start.
func watchHeap() func() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() uint64 {
		close(done)
		wg.Wait()
		return peak - base
	}
}

// A gzip bomb at the bundle URL (2.9 MB that expand to three 10^9-byte
// files) is refused from the size its tar headers declare, before it is
// expanded: the heap barely grows, the last good revision keeps deciding,
// Status says which limit it broke, and the server sees it downloaded once
// while the gateway goes on polling (it asks whether the refused bundle
// changed, and it has not). A good revision published afterwards is taken.
//
// Not parallel: the heap is measured.
func TestRemoteGzipBombIsRefusedUnexpanded(t *testing.T) {
	signingKey, publicKey := policytest.KeyPair(t)
	srv := newBundleServer(t, versioned("r1", "A", signingKey).bytes(t))
	e, _ := newEngine(t, Options{Source: srv.bundleURL(), VerificationKey: publicKey, PollInterval: time.Second, PersistDir: t.TempDir()})
	if e.Revision() != "r1" {
		t.Fatalf("revision %q before the bomb", e.Revision())
	}
	bomb := gzipBomb(t, 3, 1e9)

	heapGrowth := watchHeap()
	before := e.Status().LastRejectedAt
	srv.set(bomb)
	testutil.Eventually(t, 3*time.Minute, "the bomb rejected", func() bool { return e.Status().LastRejectedAt.After(before) })
	if st := e.Status(); !strings.Contains(st.LastRejected, "max_bundle_file_bytes") || st.Revision != "r1" || !st.Ready {
		t.Fatalf("status %+v (heap growth %d MiB): want r1 serving and a rejection naming max_bundle_file_bytes", st, heapGrowth()>>20)
	}
	// Three more polls: each asks about the refused bundle again.
	after := srv.requests()
	testutil.Eventually(t, time.Minute, "three polls after the rejection", func() bool { return srv.requests() >= after+3 })
	growth := heapGrowth()
	downloads := len(srv.servedSinceSet())
	t.Logf("bomb: %d bytes compressed, 3e9 expanded; heap growth %.1f MiB; downloaded %d time(s) in %d requests",
		len(bomb), float64(growth)/(1<<20), downloads, srv.requests()-after+1)
	if growth > 200<<20 {
		t.Errorf("the heap grew by %d MiB while refusing the bomb", growth>>20)
	}
	if downloads != 1 {
		t.Errorf("the bomb was downloaded %d times, want once", downloads)
	}
	if d := e.Decide(context.Background(), versionCall()); !decidedBy(d, map[string]string{"r1": "A"}) {
		t.Fatalf("decision after the bomb: %+v", d)
	}

	srv.set(versioned("r2", "B", signingKey).bytes(t))
	testutil.Eventually(t, 30*time.Second, "r2 activated after the bomb", func() bool { return e.Revision() == "r2" })
}
