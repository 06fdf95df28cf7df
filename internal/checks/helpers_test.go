package checks

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// selfSignedCert returns a certificate for 127.0.0.1 and "cairn.test".
func selfSignedCert(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "cairn.test"},
		DNSNames:     []string{"cairn.test"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	require.NoError(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// tcpTarget accepts and closes connections until closed.
type tcpTarget struct {
	ln net.Listener
	wg sync.WaitGroup
}

func startTCPTarget(t *testing.T, tlsCfg *tls.Config) *tcpTarget {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	if tlsCfg != nil {
		ln = tls.NewListener(ln, tlsCfg)
	}
	tt := &tcpTarget{ln: ln}
	tt.wg.Add(1)
	go func() {
		defer tt.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			if tc, ok := c.(*tls.Conn); ok {
				_ = tc.SetDeadline(time.Now().Add(2 * time.Second))
				_ = tc.Handshake()
			}
			_ = c.Close()
		}
	}()
	t.Cleanup(tt.close)
	return tt
}

func (tt *tcpTarget) addr() string { return tt.ln.Addr().String() }

func (tt *tcpTarget) close() { _ = tt.ln.Close(); tt.wg.Wait() }

// udpTarget answers every datagram with "pong" (or stays silent).
type udpTarget struct {
	pc     net.PacketConn
	wg     sync.WaitGroup
	silent bool
}

func startUDPTarget(t *testing.T, silent bool) *udpTarget {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	require.NoError(t, err)
	ut := &udpTarget{pc: pc, silent: silent}
	ut.wg.Add(1)
	go func() {
		defer ut.wg.Done()
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if !ut.silent {
				_, _ = pc.WriteTo([]byte("pong"), from)
			}
		}
	}()
	t.Cleanup(ut.close)
	return ut
}

func (ut *udpTarget) addr() string { return ut.pc.LocalAddr().String() }

func (ut *udpTarget) close() { _ = ut.pc.Close(); ut.wg.Wait() }

// closedAddr returns an address of the given network where nothing listens.
func closedAddr(t *testing.T, network string) string {
	t.Helper()
	if network == "udp" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := pc.LocalAddr().String()
		require.NoError(t, pc.Close())
		return addr
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := ln.Addr().String()
	require.NoError(t, ln.Close())
	return addr
}

// startH2TLSServer is an HTTP/2 server over TLS.
func startH2TLSServer(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write([]byte("h2")) }))
	srv.EnableHTTP2 = true
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}
