package gateway

import (
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/mcpgw/mcpgw/internal/policy"
	"github.com/mcpgw/mcpgw/internal/secrets"
)

// Address classes of a backend write's target, as data.mcp.admin sees them
// in input.admin.target.address_class. A backend URL is where the gateway
// sends callers' messages with the backend's credential; pointed at a cloud
// metadata service or another link-local address, it would make the
// gateway fetch instance credentials for whoever can write backends. The
// class lets the policy refuse that (the shipped one refuses link-local and
// metadata, data.mcpgw.admin.refused_address_classes).
const (
	classLoopback   = "loopback"
	classPrivate    = "private"
	classLinkLocal  = "link-local"
	classMetadata   = "metadata"
	classPublic     = "public"
	classUnresolved = "unresolved"
)

// classRank orders the classes by how much harm a request to them can do;
// a name that resolves to several addresses gets the worst one's class,
// since the dialer may pick any of them.
var classRank = map[string]int{classUnresolved: 0, classPublic: 1, classPrivate: 2, classLoopback: 3, classLinkLocal: 4, classMetadata: 5}

// metadataAddrs are cloud instance metadata services: AWS, Azure, GCP and
// Oracle (169.254.169.254), AWS over IPv6 (fd00:ec2::254) and Alibaba
// (100.100.100.200, outside link-local space).
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"),
	netip.MustParseAddr("fd00:ec2::254"),
	netip.MustParseAddr("100.100.100.200"),
}

// metadataNames are metadata services by name: their addresses are the ones
// above, but the name is a metadata service even where DNS does not say so
// yet (the admin API may run on another network than the gateway).
var metadataNames = []string{"metadata.google.internal", "metadata.goog"}

var (
	// sharedSpace is RFC 6598 carrier-grade NAT space, private in practice.
	sharedSpace = netip.MustParsePrefix("100.64.0.0/10")
	// nat64 is the RFC 6052 well-known prefix: its last 32 bits are an
	// IPv4 address the translator reaches.
	nat64 = netip.MustParsePrefix("64:ff9b::/96")
)

// targetResolveTimeout bounds the DNS lookup of a backend write's host: the
// admin call waits for it before the policy decides.
const targetResolveTimeout = 2 * time.Second

// classifyAddr is the class of one address.
func classifyAddr(a netip.Addr) string {
	a = a.Unmap().WithZone("")
	if nat64.Contains(a) {
		b := a.As16()
		a = netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]})
	}
	for _, m := range metadataAddrs {
		if a == m {
			return classMetadata
		}
	}
	switch {
	// 0.0.0.0 and :: reach the local host on Linux.
	case a.IsLoopback(), a.IsUnspecified():
		return classLoopback
	case a.IsLinkLocalUnicast(), a.IsLinkLocalMulticast():
		return classLinkLocal
	case a.IsPrivate(), sharedSpace.Contains(a):
		return classPrivate
	}
	return classPublic
}

// classifyHost is the class of a URL host: an address literal directly, a
// metadata service name by name, any other name by what it resolves to now
// (the most harmful of its addresses), "unresolved" when it does not
// resolve within targetResolveTimeout.
func classifyHost(ctx context.Context, resolver *net.Resolver, host string) string {
	name := strings.TrimSuffix(strings.ToLower(host), ".")
	for _, m := range metadataNames {
		if name == m {
			return classMetadata
		}
	}
	if a, err := netip.ParseAddr(name); err == nil {
		return classifyAddr(a)
	}
	if name == "" {
		return classUnresolved
	}
	ctx, cancel := context.WithTimeout(ctx, targetResolveTimeout)
	defer cancel()
	addrs, err := resolver.LookupNetIP(ctx, "ip", name)
	if err != nil || len(addrs) == 0 {
		return classUnresolved
	}
	class := classUnresolved
	for _, a := range addrs {
		if c := classifyAddr(a); classRank[c] > classRank[class] {
			class = c
		}
	}
	return class
}

// backendTarget reads the url of a backend PUT body for the policy. The body
// is read only for this (validation comes later, after authorization): a
// body without a string url has no target, and is refused as invalid
// afterwards. The url shown to the policy, and so to decision logs, has its
// secrets redacted; the host is the same as the stored url's, since a url
// sent in its redacted form stands for the stored one.
func backendTarget(ctx context.Context, body []byte) *policy.AdminTarget {
	// Read as decodeBody reads it (exact member names, the last of
	// duplicates), so the policy judges the url that would be stored.
	var sent map[string]json.RawMessage
	var raw string
	if json.Unmarshal(body, &sent) != nil || json.Unmarshal(sent["url"], &raw) != nil {
		return nil
	}
	t := &policy.AdminTarget{URL: secrets.URL(raw), AddressClass: classUnresolved}
	if u, err := url.Parse(raw); err == nil {
		t.Host = u.Hostname()
		t.AddressClass = classifyHost(ctx, net.DefaultResolver, t.Host)
	}
	return t
}
