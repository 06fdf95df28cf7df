package testutil

import (
	"net"
	"strconv"
	"sync"
	"testing"
)

// handedOut remembers every port FreePorts returned in this process so that
// two harnesses started back to back never get the same port (the kernel
// happily hands a just-closed port out again).
var (
	handedOutMu sync.Mutex
	handedOut   = map[int]bool{}
)

// FreePorts returns n distinct TCP ports on 127.0.0.1 that were free a moment
// ago (bound to :0 and closed again), also free for UDP where checked. Good
// enough for loopback tests; a port may in rare cases be taken by someone
// else before the caller binds it.
func FreePorts(tb testing.TB, n int) []int {
	tb.Helper()
	ports := make([]int, 0, n)
	var holders []net.Listener
	defer func() {
		for _, l := range holders {
			_ = l.Close()
		}
	}()
	for attempts := 0; len(ports) < n; attempts++ {
		if attempts > 100*n+100 {
			tb.Fatalf("testutil: could not find %d free ports", n)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			tb.Fatalf("testutil: listen for a free port: %v", err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		// DNS and Serf also use UDP on the same number.
		if u, err := net.ListenPacket("udp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err != nil {
			_ = l.Close()
			continue
		} else {
			_ = u.Close()
		}
		handedOutMu.Lock()
		taken := handedOut[port]
		if !taken {
			handedOut[port] = true
		}
		handedOutMu.Unlock()
		if taken {
			_ = l.Close()
			continue
		}
		holders = append(holders, l)
		ports = append(ports, port)
	}
	return ports
}
