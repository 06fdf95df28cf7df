//go:build unix

package rpc

import (
	"errors"
	"syscall"
)

// usable reports whether the server has neither closed nor reset the
// connection nor sent anything on it while it was idle. It peeks at the
// socket without blocking: a read deadline cannot tell, as Go fails a read
// whose deadline has passed before asking the socket. A close still on its
// way is not seen; the call then fails without ErrConnect.
func (pc *plainConn) usable() bool {
	if pc.dec.buffered() > 0 {
		return false
	}
	sc, ok := pc.c.(syscall.Conn)
	if !ok {
		return true // a wrapped connection (TLS, tests): cannot peek
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	err = rc.Read(func(fd uintptr) bool {
		var b [1]byte
		_, _, perr := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// Nothing to read on an open socket; a byte or EOF (0, nil) or an
		// error (a reset) all mean it is not usable.
		alive = errors.Is(perr, syscall.EAGAIN) || errors.Is(perr, syscall.EWOULDBLOCK)
		return true
	})
	return err == nil && alive
}
