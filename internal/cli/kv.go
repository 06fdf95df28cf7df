package cli

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/hashicorp/consul/api"
)

func runKVGet(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "kv get")
	hf.register(fs)
	base64Enc := fs.Bool("base64", false, "Base64-encode the value.")
	detailed := fs.Bool("detailed", false, "Print the full entry metadata.")
	keys := fs.Bool("keys", false, "List keys which start with the prefix.")
	recurse := fs.Bool("recurse", false, "Recursively look at all keys prefixed with the given path.")
	separator := fs.String("separator", "/", "Separator to roll keys up at (with -keys).")
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	key := ""
	switch fs.NArg() {
	case 0:
		if !*keys && !*recurse {
			return errors.New("missing KEY argument")
		}
	case 1:
		key = fs.Arg(0)
	default:
		return fmt.Errorf("too many arguments (expected 1, got %d)", fs.NArg())
	}
	if *keys && *recurse {
		return errors.New("cannot specify both -keys and -recurse")
	}
	key = strings.TrimPrefix(key, "/")
	c, err := hf.client()
	if err != nil {
		return err
	}
	kv := c.KV()
	switch {
	case *keys:
		list, _, err := kv.Keys(key, *separator, hf.queryOptions())
		if err != nil {
			return fmt.Errorf("querying keys: %w", err)
		}
		for _, k := range list {
			u.Printf("%s\n", k)
		}
	case *recurse:
		pairs, _, err := kv.List(key, hf.queryOptions())
		if err != nil {
			return fmt.Errorf("querying %q: %w", key, err)
		}
		for i, p := range pairs {
			if *detailed {
				printKVDetailed(u, p, *base64Enc)
				if i < len(pairs)-1 {
					u.Printf("\n")
				}
				continue
			}
			u.Printf("%s:%s\n", p.Key, kvValue(p.Value, *base64Enc))
		}
	default:
		p, _, err := kv.Get(key, hf.queryOptions())
		if err != nil {
			return fmt.Errorf("querying %q: %w", key, err)
		}
		if p == nil {
			return fmt.Errorf("no key exists at: %s", key)
		}
		if *detailed {
			printKVDetailed(u, p, *base64Enc)
			return nil
		}
		u.Printf("%s\n", kvValue(p.Value, *base64Enc))
	}
	return nil
}

func kvValue(v []byte, b64 bool) string {
	if b64 {
		return base64.StdEncoding.EncodeToString(v)
	}
	return string(v)
}

func printKVDetailed(u *ui, p *api.KVPair, b64 bool) {
	tw := tabwriter.NewWriter(u.out, 0, 2, 6, ' ', 0)
	fmt.Fprintf(tw, "CreateIndex\t%d\n", p.CreateIndex)
	fmt.Fprintf(tw, "Flags\t%d\n", p.Flags)
	fmt.Fprintf(tw, "Key\t%s\n", p.Key)
	fmt.Fprintf(tw, "LockIndex\t%d\n", p.LockIndex)
	fmt.Fprintf(tw, "ModifyIndex\t%d\n", p.ModifyIndex)
	session := p.Session
	if session == "" {
		session = "-"
	}
	fmt.Fprintf(tw, "Session\t%s\n", session)
	fmt.Fprintf(tw, "Value\t%s\n", kvValue(p.Value, b64))
	tw.Flush()
}

// readData resolves Consul's DATA argument forms: "-" reads stdin, "@path"
// reads a file, anything else is the literal value.
func readData(u *ui, arg string) ([]byte, error) {
	switch {
	case arg == "-":
		b, err := io.ReadAll(u.in)
		if err != nil {
			return nil, fmt.Errorf("reading stdin: %w", err)
		}
		return b, nil
	case strings.HasPrefix(arg, "@"):
		b, err := os.ReadFile(arg[1:])
		if err != nil {
			return nil, fmt.Errorf("reading file: %w", err)
		}
		return b, nil
	default:
		return []byte(arg), nil
	}
}

func runKVPut(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "kv put")
	hf.register(fs)
	b64 := fs.Bool("base64", false, "Treat the data as base64 encoded.")
	cas := fs.Bool("cas", false, "Perform a Check-And-Set operation (needs -modify-index).")
	flags := fs.Uint64("flags", 0, "Unsigned integer value to assign to this KV pair.")
	modifyIndex := fs.Uint64("modify-index", 0, "Index the key must have for -cas.")
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	var key, data string
	switch fs.NArg() {
	case 0:
		return errors.New("missing KEY argument")
	case 1:
		key = fs.Arg(0)
		if k, v, ok := strings.Cut(key, "="); ok {
			key, data = k, v
		}
	case 2:
		key, data = fs.Arg(0), fs.Arg(1)
	default:
		return fmt.Errorf("too many arguments (expected 1 or 2, got %d)", fs.NArg())
	}
	key = strings.TrimPrefix(key, "/")
	if key == "" {
		return errors.New("missing KEY argument")
	}
	value, err := readData(u, data)
	if err != nil {
		return err
	}
	if *b64 {
		dec, err := base64.StdEncoding.DecodeString(string(value))
		if err != nil {
			return fmt.Errorf("decoding base64 data: %w", err)
		}
		value = dec
	}
	c, err := hf.client()
	if err != nil {
		return err
	}
	pair := &api.KVPair{Key: key, Flags: *flags, Value: value, ModifyIndex: *modifyIndex}
	if *cas {
		ok, _, err := c.KV().CAS(pair, nil)
		if err != nil {
			return fmt.Errorf("writing %q: %w", key, err)
		}
		if !ok {
			return fmt.Errorf("did not write to %s: CAS failed", key)
		}
	} else if _, err := c.KV().Put(pair, nil); err != nil {
		return fmt.Errorf("writing %q: %w", key, err)
	}
	u.Printf("Success! Data written to: %s\n", key)
	return nil
}

func runKVDelete(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "kv delete")
	hf.register(fs)
	cas := fs.Bool("cas", false, "Perform a Check-And-Set delete (needs -modify-index).")
	modifyIndex := fs.Uint64("modify-index", 0, "Index the key must have for -cas.")
	recurse := fs.Bool("recurse", false, "Recursively delete all keys with the path.")
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	key := ""
	switch fs.NArg() {
	case 0:
		if !*recurse {
			return errors.New("missing KEY argument")
		}
	case 1:
		key = strings.TrimPrefix(fs.Arg(0), "/")
	default:
		return fmt.Errorf("too many arguments (expected 1, got %d)", fs.NArg())
	}
	if *cas && *recurse {
		return errors.New("cannot specify both -cas and -recurse")
	}
	if *cas && *modifyIndex == 0 {
		return errors.New("-cas requires -modify-index")
	}
	c, err := hf.client()
	if err != nil {
		return err
	}
	switch {
	case *recurse:
		if _, err := c.KV().DeleteTree(key, nil); err != nil {
			return fmt.Errorf("deleting prefix %q: %w", key, err)
		}
		u.Printf("Success! Deleted keys with prefix: %s\n", key)
	case *cas:
		ok, _, err := c.KV().DeleteCAS(&api.KVPair{Key: key, ModifyIndex: *modifyIndex}, nil)
		if err != nil {
			return fmt.Errorf("deleting %q: %w", key, err)
		}
		if !ok {
			return fmt.Errorf("did not delete key %s: CAS failed", key)
		}
		u.Printf("Success! Deleted key: %s\n", key)
	default:
		if _, err := c.KV().Delete(key, nil); err != nil {
			return fmt.Errorf("deleting %q: %w", key, err)
		}
		u.Printf("Success! Deleted key: %s\n", key)
	}
	return nil
}

// exportEntry is the JSON shape of `consul kv export`.
type exportEntry struct {
	Key   string `json:"key"`
	Flags uint64 `json:"flags"`
	Value string `json:"value"`
}

func runKVExport(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "kv export")
	hf.register(fs)
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("too many arguments (expected 0 or 1, got %d)", fs.NArg())
	}
	prefix := strings.TrimPrefix(fs.Arg(0), "/")
	c, err := hf.client()
	if err != nil {
		return err
	}
	pairs, _, err := c.KV().List(prefix, hf.queryOptions())
	if err != nil {
		return fmt.Errorf("querying %q: %w", prefix, err)
	}
	out := make([]exportEntry, 0, len(pairs))
	for _, p := range pairs {
		out = append(out, exportEntry{Key: p.Key, Flags: p.Flags, Value: base64.StdEncoding.EncodeToString(p.Value)})
	}
	b, err := json.MarshalIndent(out, "", "\t")
	if err != nil {
		return err
	}
	u.Printf("%s\n", b)
	return nil
}

func runKVImport(u *ui, args []string) error {
	var hf httpFlags
	fs := newFlagSet(u, "kv import")
	hf.register(fs)
	prefix := fs.String("prefix", "", "Key prefix for imported data.")
	if err := parseFlags(u, fs, args); err != nil {
		return err
	}
	if fs.NArg() > 1 {
		return fmt.Errorf("too many arguments (expected 1, got %d)", fs.NArg())
	}
	arg := fs.Arg(0)
	if fs.NArg() == 0 {
		arg = "-"
	}
	data, err := readData(u, arg)
	if err != nil {
		return err
	}
	var entries []exportEntry
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&entries); err != nil {
		return fmt.Errorf("cannot unmarshal data: %w", err)
	}
	// Decode every value before writing any, so bad input writes nothing.
	pairs := make([]*api.KVPair, 0, len(entries))
	for _, e := range entries {
		v, err := base64.StdEncoding.DecodeString(e.Value)
		if err != nil {
			return fmt.Errorf("decoding value of %q: %w", e.Key, err)
		}
		pairs = append(pairs, &api.KVPair{Key: *prefix + e.Key, Flags: e.Flags, Value: v})
	}
	c, err := hf.client()
	if err != nil {
		return err
	}
	for _, p := range pairs {
		if _, err := c.KV().Put(p, nil); err != nil {
			return fmt.Errorf("writing %q: %w", p.Key, err)
		}
		u.Printf("Imported: %s\n", p.Key)
	}
	return nil
}
