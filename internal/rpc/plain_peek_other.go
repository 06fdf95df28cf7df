//go:build !unix

package rpc

// usable reports whether nothing is buffered; without a non-blocking peek a
// close by the server is found by the call that follows it.
func (pc *plainConn) usable() bool { return pc.dec.buffered() == 0 }
