//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package dns

import (
	"syscall"

	"golang.org/x/sys/unix"
)

// reusePortSupported: several UDP sockets can share the DNS port, letting
// the kernel spread packets over one reader per CPU.
const reusePortSupported = true

func reusePortControl(_, _ string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	})
	if err != nil {
		return err
	}
	return serr
}
