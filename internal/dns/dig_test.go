package dns

import (
	"context"
	"net"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestServer_Dig checks the answers with the real dig (Debian
// bind9-dnsutils); skipped when dig is not installed.
func TestServer_Dig(t *testing.T) {
	dig, err := exec.LookPath("dig")
	if err != nil {
		t.Skip("dig not installed (apt-get install bind9-dnsutils)")
	}
	s := startServer(t, newFixture(), nil)
	_, port, err := net.SplitHostPort(s.UDPAddr().String())
	require.NoError(t, err)
	_, tcpPort, err := net.SplitHostPort(s.TCPAddr().String())
	require.NoError(t, err)

	run := func(t *testing.T, tcp bool, args ...string) string {
		t.Helper()
		p := port
		base := []string{"@127.0.0.1", "+time=3", "+tries=1"}
		if tcp {
			p = tcpPort
			base = append(base, "+tcp")
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, dig, append(append(base, "-p", p), args...)...).CombinedOutput()
		require.NoError(t, err, string(out))
		return string(out)
	}
	sortedLines := func(s string) []string {
		var out []string
		for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
			if l != "" {
				out = append(out, l)
			}
		}
		sort.Strings(out)
		return out
	}

	cases := []struct {
		name string
		args []string
		want []string // +short lines, sorted
	}{
		{"node A", []string{"node1.node.consul", "A", "+short"}, []string{"10.0.0.1"}},
		{"node TXT", []string{"node1.node.dc1.consul", "TXT", "+short"}, []string{`"hello world"`, `"rack=r1"`}},
		{"node AAAA", []string{"node4.node.consul", "AAAA", "+short"}, []string{"2001:db8::4"}},
		{"service A", []string{"web.service.consul", "A", "+short"}, []string{"10.0.0.1", "10.0.0.2"}},
		{"service SRV", []string{"web.service.consul", "SRV", "+short"}, []string{
			"1 1 8080 node4.node.dc1.consul.", "1 2 80 node2.node.dc1.consul.", "1 5 80 node1.node.dc1.consul."}},
		{"tagged", []string{"primary.web.service.consul", "A", "+short"}, []string{"10.0.0.1"}},
		{"rfc2782", []string{"_web._primary.service.consul", "SRV", "+short"}, []string{"1 5 80 node1.node.dc1.consul."}},
		{"addr", []string{"0a000001.addr.dc1.consul", "A", "+short"}, []string{"10.0.0.1"}},
		{"ptr", []string{"-x", "10.0.0.1", "+short"}, []string{"node1.node.dc1.consul."}},
		{"ns", []string{"consul", "NS", "+short"}, []string{"srv1.node.dc1.consul."}},
	}
	for _, tcp := range []bool{false, true} {
		network := "udp"
		if tcp {
			network = "tcp"
		}
		for _, tc := range cases {
			t.Run(network+"/"+tc.name, func(t *testing.T) {
				require.Equal(t, tc.want, sortedLines(run(t, tcp, tc.args...)))
			})
		}
		t.Run(network+"/nxdomain with SOA", func(t *testing.T) {
			out := run(t, tcp, "nope.service.consul", "A")
			require.Contains(t, out, "status: NXDOMAIN")
			require.Contains(t, out, "flags: qr aa")
			require.Regexp(t, `consul\.\s+0\s+IN\s+SOA\s+ns\.consul\. hostmaster\.consul\.`, out)
		})
	}
	t.Run("udp without EDNS gets udp_answer_limit answers", func(t *testing.T) {
		require.Len(t, sortedLines(run(t, false, "big.service.consul", "A", "+short", "+noedns")), DefaultUDPAnswerLimit)
		require.Len(t, sortedLines(run(t, true, "big.service.consul", "A", "+short", "+noedns")), bigInstances)
	})
}
