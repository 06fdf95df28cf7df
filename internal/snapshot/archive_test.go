package snapshot

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func testMeta(size int) *Meta {
	return &Meta{
		ID: "2-17-1700000000000", Index: 17, Term: 2, Version: 1, Size: int64(size),
		Configuration:      []Server{{ID: "n1", Address: "127.0.0.1:8300", Suffrage: "voter"}},
		ConfigurationIndex: 1, CairnVersion: "0.1.0-dev",
		Created: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC),
	}
}

func makeArchive(t testing.TB, state []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	require.NoError(t, Write(&buf, testMeta(len(state)), bytes.NewReader(state)))
	return buf.Bytes()
}

// gunzip returns the plain tar inside a written archive.
func gunzip(t testing.TB, b []byte) []byte {
	t.Helper()
	zr, err := gzip.NewReader(bytes.NewReader(b))
	require.NoError(t, err)
	out, err := io.ReadAll(zr)
	require.NoError(t, err)
	return out
}

func TestArchive_RoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name  string
		state []byte
	}{
		{"empty", nil},
		{"small", []byte(`{"Version":1}` + "\n")},
		{"exact block", bytes.Repeat([]byte{'x'}, 1024)},
		{"large", bytes.Repeat([]byte("0123456789abcdef"), 64<<10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			arch := makeArchive(t, tc.state)
			for _, form := range []struct {
				name string
				b    []byte
			}{{"gzip", arch}, {"tar", gunzip(t, arch)}} {
				meta, err := Verify(bytes.NewReader(form.b))
				require.NoError(t, err, form.name)
				want := testMeta(len(tc.state))
				want.FormatVersion = FormatVersion
				require.Equal(t, want, meta, form.name)

				var got []byte
				err = Read(bytes.NewReader(form.b), func(m *Meta, state io.Reader) error {
					require.Equal(t, want, m)
					got, err = io.ReadAll(state)
					return err
				})
				require.NoError(t, err, form.name)
				require.Equal(t, len(tc.state), len(got))
				require.True(t, bytes.Equal(tc.state, got), form.name)
			}
		})
	}
}

func TestArchive_ApplyErrorIsReturned(t *testing.T) {
	boom := errors.New("boom")
	err := Read(bytes.NewReader(makeArchive(t, []byte("abc"))), func(*Meta, io.Reader) error { return boom })
	require.ErrorIs(t, err, boom)
}

func TestWrite_SizeMismatch(t *testing.T) {
	var buf bytes.Buffer
	err := Write(&buf, testMeta(10), strings.NewReader("short"))
	require.ErrorContains(t, err, "state ended after 5 of 10 bytes")
	buf.Reset()
	err = Write(&buf, testMeta(2), strings.NewReader("longer"))
	require.ErrorContains(t, err, "longer than its size 2")
}

// mustRefuse checks that b is refused by Verify and by Read, which must not
// call apply.
func mustRefuse(t *testing.T, b []byte, what string) error {
	t.Helper()
	_, err := Verify(bytes.NewReader(b))
	require.Error(t, err, what)
	require.ErrorIs(t, err, ErrCorrupt, what)
	rerr := Read(bytes.NewReader(b), func(*Meta, io.Reader) error {
		t.Fatalf("%s: apply called for a corrupt archive", what)
		return nil
	})
	require.ErrorIs(t, rerr, ErrCorrupt, what)
	return err
}

func TestArchive_CorruptByteAnywhere(t *testing.T) {
	state := bytes.Repeat([]byte(`{"Table":"kvs","Row":{"Key":"a"}}`+"\n"), 40)
	arch := makeArchive(t, state)
	t.Run("tar", func(t *testing.T) {
		plain := gunzip(t, arch)
		for i := range plain {
			b := bytes.Clone(plain)
			b[i] ^= 0xff
			mustRefuse(t, b, "tar byte "+itoa(i))
		}
	})
	t.Run("gzip", func(t *testing.T) {
		for i := range arch {
			// Bytes 4-9 of a gzip header (mtime, extra flags, OS) carry
			// no data and are not checksummed by the format.
			if i >= 4 && i <= 9 {
				continue
			}
			b := bytes.Clone(arch)
			b[i] ^= 0xff
			mustRefuse(t, b, "gzip byte "+itoa(i))
		}
	})
}

func TestArchive_Truncated(t *testing.T) {
	arch := makeArchive(t, bytes.Repeat([]byte("state "), 300))
	plain := gunzip(t, arch)
	for _, form := range []struct {
		name string
		b    []byte
	}{{"gzip", arch}, {"tar", plain}} {
		t.Run(form.name, func(t *testing.T) {
			for n := 0; n < len(form.b); n++ {
				mustRefuse(t, form.b[:n], "truncated to "+itoa(n))
			}
		})
	}
}

func TestArchive_Messages(t *testing.T) {
	state := []byte("some state bytes")
	plain := gunzip(t, makeArchive(t, state))
	idx := bytes.Index(plain, state)
	require.Positive(t, idx)
	b := bytes.Clone(plain)
	b[idx] = 'S'
	err := mustRefuse(t, b, "state byte")
	require.EqualError(t, err, "snapshot: checksum mismatch for state.bin")

	midx := bytes.Index(plain, []byte(`"Index": 17`))
	b = bytes.Clone(plain)
	b[midx+10] = '8'
	err = mustRefuse(t, b, "meta byte")
	require.EqualError(t, err, "snapshot: checksum mismatch for meta.json")

	err = mustRefuse(t, nil, "empty")
	require.EqualError(t, err, "snapshot: archive is empty")
	err = mustRefuse(t, []byte("not a snapshot at all"), "garbage")
	require.ErrorContains(t, err, "snapshot: archive is truncated")

	err = mustRefuse(t, plain[:idx+3], "cut in state")
	require.ErrorContains(t, err, "snapshot: archive is truncated (reading state.bin)")
}

func TestArchive_WrongStructure(t *testing.T) {
	build := func(entries ...[2]string) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, e := range entries {
			require.NoError(t, tw.WriteHeader(&tar.Header{Name: e[0], Size: int64(len(e[1])), Mode: 0o600, Typeflag: tar.TypeReg}))
			_, err := tw.Write([]byte(e[1]))
			require.NoError(t, err)
		}
		require.NoError(t, tw.Close())
		return buf.Bytes()
	}
	for _, tc := range []struct {
		name    string
		entries [][2]string
		msg     string
	}{
		{"missing all", nil, "meta.json is missing"},
		{"wrong first", [][2]string{{"other", "x"}}, `unexpected entry "other"`},
		{"missing sums", [][2]string{{metaName, "{}"}, {stateName, ""}}, "SHA256SUMS is missing"},
		{"bad sums", [][2]string{{metaName, "{}"}, {stateName, ""}, {sumsName, "nope\n"}}, "malformed line"},
		{"extra entry", [][2]string{{metaName, "{}"}, {stateName, ""}, {sumsName, ""}, {"x", ""}}, `unexpected entry "x"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := mustRefuse(t, build(tc.entries...), tc.name)
			require.ErrorContains(t, err, tc.msg)
		})
	}
}

func itoa(i int) string {
	const digits = "0123456789"
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{digits[i%10]}, b...)
	}
	return string(b)
}

func FuzzVerify(f *testing.F) {
	arch := makeArchive(f, []byte(`{"Version":1}`+"\n"))
	f.Add(arch)
	f.Add(gunzip(f, arch))
	f.Add([]byte{})
	f.Add([]byte{0x1f, 0x8b})
	f.Fuzz(func(t *testing.T, b []byte) {
		meta, err := Verify(bytes.NewReader(b))
		if err == nil && meta == nil {
			t.Fatal("nil meta without error")
		}
		if err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("error for in-memory input is not ErrCorrupt: %v", err)
		}
	})
}
