package cli

import (
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"text/tabwriter"
	"time"

	"github.com/cairn-io/cairn/internal/snapshot"
	"github.com/cairn-io/cairn/internal/state"
)

// snapshotFileArg parses the flags of a snapshot subcommand and returns its
// one FILE argument.
func snapshotFileArg(u *ui, name string, args []string, hf *httpFlags) (string, error) {
	fs := newFlagSet(u, name)
	if hf != nil {
		hf.register(fs)
	}
	if err := parseFlags(u, fs, args); err != nil {
		return "", err
	}
	switch fs.NArg() {
	case 0:
		return "", errors.New("missing FILE argument")
	case 1:
		return fs.Arg(0), nil
	default:
		return "", fmt.Errorf("too many arguments (expected 1, got %d)", fs.NArg())
	}
}

// runSnapshotSave downloads a snapshot to FILE.tmp, verifies it, and only
// then renames it to FILE, so FILE is never a partial or corrupt archive.
func runSnapshotSave(u *ui, args []string) error {
	var hf httpFlags
	path, err := snapshotFileArg(u, "snapshot save", args, &hf)
	if err != nil {
		return err
	}
	c, err := hf.client()
	if err != nil {
		return err
	}
	rc, qm, err := c.Snapshot().Save(hf.queryOptions())
	if err != nil {
		return fmt.Errorf("saving snapshot: %w", err)
	}
	defer rc.Close()

	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("creating snapshot file: %w", err)
	}
	keep := false
	defer func() {
		if !keep {
			_ = f.Close()
			_ = os.Remove(tmp)
		}
	}()
	if _, err := io.Copy(f, rc); err != nil {
		return fmt.Errorf("writing snapshot file: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("writing snapshot file: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("writing snapshot file: %w", err)
	}
	meta, err := snapshot.ReadFile(tmp)
	if err != nil {
		return fmt.Errorf("verifying snapshot file: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("renaming snapshot file: %w", err)
	}
	keep = true
	index := qm.LastIndex
	if index == 0 {
		index = meta.Index
	}
	u.Printf("Saved and verified snapshot to index %d\n", index)
	return nil
}

// runSnapshotRestore uploads FILE; the server verifies it completely before
// applying it, so a corrupt file is refused with the server's message.
func runSnapshotRestore(u *ui, args []string) error {
	var hf httpFlags
	path, err := snapshotFileArg(u, "snapshot restore", args, &hf)
	if err != nil {
		return err
	}
	c, err := hf.client()
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening snapshot file: %w", err)
	}
	defer f.Close()
	if err := c.Snapshot().Restore(nil, f); err != nil {
		return fmt.Errorf("restoring snapshot: %w", err)
	}
	u.Printf("Restored snapshot\n")
	return nil
}

// tableStats is the number and total size of one table's records.
type tableStats struct {
	name  string
	count int
	size  int64
}

// runSnapshotInspect verifies FILE offline and prints its metadata and the
// records per state table.
func runSnapshotInspect(u *ui, args []string) error {
	path, err := snapshotFileArg(u, "snapshot inspect", args, nil)
	if err != nil {
		return err
	}
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("opening snapshot file: %w", err)
	}
	defer f.Close()
	var (
		meta     *snapshot.Meta
		stats    []tableStats
		statsErr error
	)
	err = snapshot.Read(f, func(m *snapshot.Meta, state io.Reader) error {
		meta = m
		stats, statsErr = countRecords(state)
		return nil
	})
	if err != nil {
		return fmt.Errorf("inspecting snapshot: %w", err)
	}
	tw := tabwriter.NewWriter(u.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "ID\t%s\n", meta.ID)
	fmt.Fprintf(tw, "Size\t%d\n", meta.Size)
	fmt.Fprintf(tw, "Index\t%d\n", meta.Index)
	fmt.Fprintf(tw, "Term\t%d\n", meta.Term)
	fmt.Fprintf(tw, "Version\t%d\n", meta.Version)
	if meta.CairnVersion != "" {
		fmt.Fprintf(tw, "Cairn Version\t%s\n", meta.CairnVersion)
	}
	if !meta.Created.IsZero() {
		fmt.Fprintf(tw, "Created\t%s\n", meta.Created.UTC().Format(time.RFC3339))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if statsErr != nil {
		u.Printf("\nRecord counts unavailable: %v\n", statsErr)
		return nil
	}
	tw = tabwriter.NewWriter(u.out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nTable\tCount\tSize\n")
	fmt.Fprintf(tw, "-----\t-----\t----\n")
	var total int64
	for _, s := range stats {
		fmt.Fprintf(tw, "%s\t%d\t%d\n", s.name, s.count, s.size)
		total += s.size
	}
	fmt.Fprintf(tw, "-----\t-----\t----\n")
	fmt.Fprintf(tw, "Total\t\t%d\n", total)
	return tw.Flush()
}

// countRecords reads the state store's snapshot stream (either format
// version, see state.SnapshotV1 and state.SnapshotV2) and counts rows per
// table, largest first.
func countRecords(r io.Reader) ([]tableStats, error) {
	sr, err := state.NewSnapshotReader(r)
	if err != nil {
		return nil, fmt.Errorf("state header: %w", err)
	}
	byTable := map[string]*tableStats{}
	for {
		table, row, err := sr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, fmt.Errorf("state record: %w", err)
		}
		s := byTable[table]
		if s == nil {
			s = &tableStats{name: table}
			byTable[table] = s
		}
		s.count++
		s.size += int64(len(row))
	}
	out := make([]tableStats, 0, len(byTable))
	for _, s := range byTable {
		out = append(out, *s)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].size != out[j].size {
			return out[i].size > out[j].size
		}
		return out[i].name < out[j].name
	})
	return out, nil
}
