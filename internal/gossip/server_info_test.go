package gossip

import (
	"log/slog"
	"net"
	"testing"

	"github.com/hashicorp/serf/serf"
	"github.com/stretchr/testify/require"
)

func TestIsServer(t *testing.T) {
	ip := net.ParseIP("10.0.0.5")
	tests := []struct {
		name   string
		tags   map[string]string
		want   *ServerInfo
		server bool
	}{
		{
			name: "full server",
			tags: map[string]string{TagRole: RoleServer, TagDatacenter: "dc1", TagPort: "8300", TagBuild: "0.1.0:abc",
				TagVsn: "2", TagID: "id-1", TagExpect: "3", TagBootstrap: "1", TagRaftVsn: "3"},
			want: &ServerInfo{Name: "s1", ID: "id-1", Datacenter: "dc1", Addr: &net.TCPAddr{IP: ip, Port: 8300}, Port: 8300,
				Bootstrap: true, Expect: 3, Build: "0.1.0:abc", Version: 2, RaftVersion: 3, Status: serf.StatusAlive},
			server: true,
		},
		{
			name:   "minimal server",
			tags:   map[string]string{TagRole: RoleServer, TagPort: "9000"},
			want:   &ServerInfo{Name: "s1", Addr: &net.TCPAddr{IP: ip, Port: 9000}, Port: 9000, Status: serf.StatusAlive},
			server: true,
		},
		{name: "client", tags: map[string]string{TagRole: RoleClient, TagPort: "8300"}},
		{name: "no role", tags: map[string]string{TagPort: "8300"}},
		{name: "missing port", tags: map[string]string{TagRole: RoleServer}},
		{name: "bad port", tags: map[string]string{TagRole: RoleServer, TagPort: "http"}},
		{name: "port out of range", tags: map[string]string{TagRole: RoleServer, TagPort: "70000"}},
		{name: "bad expect", tags: map[string]string{TagRole: RoleServer, TagPort: "8300", TagExpect: "three"}},
		{name: "negative expect", tags: map[string]string{TagRole: RoleServer, TagPort: "8300", TagExpect: "-1"}},
		{name: "bad vsn", tags: map[string]string{TagRole: RoleServer, TagPort: "8300", TagVsn: "x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := serf.Member{Name: "s1", Addr: ip, Port: 8301, Tags: tc.tags, Status: serf.StatusAlive}
			got, ok := IsServer(m)
			require.Equal(t, tc.server, ok)
			require.Equal(t, tc.want, got)
		})
	}
}

func TestParseLogLine(t *testing.T) {
	tests := []struct {
		line      string
		level     slog.Level
		subsystem string
		text      string
	}{
		{"[INFO] serf: EventMemberJoin: n1 127.0.0.1", slog.LevelInfo, "serf", "EventMemberJoin: n1 127.0.0.1"},
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:5", slog.LevelDebug, "memberlist", "Stream connection from=127.0.0.1:5"},
		{"[INFO] memberlist: Suspect n3 has failed", slog.LevelDebug, "memberlist", "Suspect n3 has failed"},
		{"[WARN] memberlist: Was able to connect", slog.LevelWarn, "memberlist", "Was able to connect"},
		{"[ERR] serf: boom\n", slog.LevelError, "serf", "boom"},
		{"no prefix at all", slog.LevelInfo, "gossip", "no prefix at all"},
	}
	for _, tc := range tests {
		t.Run(tc.line, func(t *testing.T) {
			level, sub, text := parseLogLine(tc.line)
			require.Equal(t, tc.level, level)
			require.Equal(t, tc.subsystem, sub)
			require.Equal(t, tc.text, text)
		})
	}
}

func TestDropQueue_DropsOldest(t *testing.T) {
	q := newDropQueue[int](3, "test", slog.New(slog.DiscardHandler))
	for i := range 5 {
		q.push(i)
	}
	require.Equal(t, uint64(2), q.dropped.Load())
	q.close()
	var got []int
	for v := range q.ch {
		got = append(got, v)
	}
	require.Equal(t, []int{2, 3, 4}, got)
}
