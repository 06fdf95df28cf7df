package server

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"

	"github.com/cairn-io/cairn/internal/fsutil"
	"github.com/cairn-io/cairn/internal/raftlog"
)

// Raft's stable-store keys, carried over when an older data directory is
// migrated.
var (
	raftStableUintKeys = []string{"CurrentTerm", "LastVoteTerm"}
	raftStableByteKeys = []string{"LastVoteCand"}
)

// openLogStore opens the Raft log and stable store in raftDir/wal. A data
// directory from before internal/raftlog holds raftDir/raft.db
// (raft-boltdb) instead: its entries and stable keys are copied into a new
// store built beside it, which is renamed into place only when complete,
// and raft.db is removed after that. A crash at any point leaves either
// the old store or the complete new one.
func openLogStore(raftDir string, logger *slog.Logger) (*raftlog.Store, error) {
	walDir := filepath.Join(raftDir, "wal")
	boltPath := filepath.Join(raftDir, "raft.db")
	opts := raftlog.Options{Logger: logger.With("component", "raft.log")}
	_, walErr := os.Stat(walDir)
	_, boltErr := os.Stat(boltPath)
	if errors.Is(walErr, os.ErrNotExist) && boltErr == nil {
		if err := migrateBoltLog(boltPath, walDir, opts); err != nil {
			return nil, err
		}
		logger.Info("migrated the raft log from raft-boltdb", "from", boltPath, "to", walDir)
	} else if boltErr == nil {
		// The migration finished but the old file survived a crash.
		if err := os.Remove(boltPath); err != nil {
			return nil, fmt.Errorf("server: remove migrated %s: %w", boltPath, err)
		}
	}
	store, err := raftlog.Open(walDir, opts)
	if err != nil {
		return nil, fmt.Errorf("server: open raft log store %s: %w", walDir, err)
	}
	return store, nil
}

func migrateBoltLog(boltPath, walDir string, opts raftlog.Options) error {
	tmp := walDir + ".migrating"
	if err := os.RemoveAll(tmp); err != nil {
		return fmt.Errorf("server: clear %s: %w", tmp, err)
	}
	old, err := raftboltdb.New(raftboltdb.Options{Path: boltPath, BoltOptions: &bbolt.Options{
		Timeout: time.Second, NoFreelistSync: true, FreelistType: bbolt.FreelistMapType,
	}})
	if err != nil {
		return fmt.Errorf("server: open %s to migrate it: %w", boltPath, err)
	}
	defer old.Close()
	st, err := raftlog.Open(tmp, opts)
	if err != nil {
		return fmt.Errorf("server: migrate raft log: %w", err)
	}
	if err := st.Import(old, old, raftStableUintKeys, raftStableByteKeys); err != nil {
		_ = st.Close()
		return fmt.Errorf("server: migrate %s: %w", boltPath, err)
	}
	if err := st.Close(); err != nil {
		return fmt.Errorf("server: migrate raft log: %w", err)
	}
	if err := os.Rename(tmp, walDir); err != nil {
		return fmt.Errorf("server: migrate raft log: %w", err)
	}
	if err := fsutil.SyncDir(filepath.Dir(walDir)); err != nil {
		return fmt.Errorf("server: migrate raft log: %w", err)
	}
	_ = old.Close()
	if err := os.Remove(boltPath); err != nil {
		return fmt.Errorf("server: remove migrated %s: %w", boltPath, err)
	}
	return nil
}
