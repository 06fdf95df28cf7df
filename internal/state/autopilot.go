package state

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
)

// tableAutopilot holds at most one row: the replicated autopilot
// configuration.
const tableAutopilot = "autopilot-config"

// AutopilotConfig is the replicated autopilot configuration. JSON field
// names and duration strings match Consul's
// /v1/operator/autopilot/configuration.
type AutopilotConfig struct {
	// CleanupDeadServers removes failed or left servers from the Raft
	// configuration.
	CleanupDeadServers bool
	// LastContactThreshold is how long a server may go without contact
	// from the leader before it counts as unhealthy.
	LastContactThreshold Duration
	// MaxTrailingLogs is how many log entries a server may lag behind the
	// leader and still be healthy.
	MaxTrailingLogs uint64
	// MinQuorum is the number of voters below which dead servers are not
	// removed.
	MinQuorum uint
	// ServerStabilizationTime is how long a new server must be healthy
	// before it is promoted to voter.
	ServerStabilizationTime Duration

	// The Enterprise-only settings are kept so that a round trip through
	// the API does not lose them; Cairn does not act on them.
	RedundancyZoneTag       string
	DisableUpgradeMigration bool
	UpgradeVersionTag       string

	CreateIndex uint64
	ModifyIndex uint64
}

// DefaultAutopilotConfig returns Consul's defaults.
func DefaultAutopilotConfig() AutopilotConfig {
	return AutopilotConfig{
		CleanupDeadServers:      true,
		LastContactThreshold:    Duration(200 * time.Millisecond),
		MaxTrailingLogs:         250,
		MinQuorum:               0,
		ServerStabilizationTime: Duration(10 * time.Second),
	}
}

// Validate reports the first setting that cannot work.
func (c *AutopilotConfig) Validate() error {
	if c.LastContactThreshold < 0 {
		return fmt.Errorf("%w: LastContactThreshold %s is negative", ErrInvalidInput, time.Duration(c.LastContactThreshold))
	}
	if c.ServerStabilizationTime < 0 {
		return fmt.Errorf("%w: ServerStabilizationTime %s is negative", ErrInvalidInput, time.Duration(c.ServerStabilizationTime))
	}
	return nil
}

// autopilotTableSchema is the schema of the single-row autopilot table.
func autopilotTableSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: tableAutopilot,
		Indexes: map[string]*memdb.IndexSchema{
			"id": {Name: "id", AllowMissing: true, Unique: true,
				Indexer: &memdb.ConditionalIndex{Conditional: func(any) (bool, error) { return true, nil }}},
		},
	}
}

// AutopilotConfig returns the stored configuration (nil when none has been
// written yet) and the table's index.
func (s *Store) AutopilotConfig(ws memdb.WatchSet) (uint64, *AutopilotConfig, error) {
	tx := s.db.Txn(false)
	defer tx.Abort()
	ch, raw, err := tx.FirstWatch(tableAutopilot, "id")
	if err != nil {
		return 0, nil, fmt.Errorf("state: read autopilot config: %w", err)
	}
	ws.Add(ch)
	idx := maxIndexTxn(tx, tableAutopilot)
	if raw == nil {
		return idx, nil, nil
	}
	c := *raw.(*AutopilotConfig)
	return idx, &c, nil
}

// AutopilotSetConfig stores cfg at index idx unconditionally.
func (s *Store) AutopilotSetConfig(idx uint64, cfg *AutopilotConfig) error {
	_, err := s.autopilotWrite(idx, cfg, false, 0)
	return err
}

// AutopilotCASConfig stores cfg only if the stored configuration's
// ModifyIndex is cidx (0: only if none is stored yet). It reports whether
// it wrote.
func (s *Store) AutopilotCASConfig(idx, cidx uint64, cfg *AutopilotConfig) (bool, error) {
	return s.autopilotWrite(idx, cfg, true, cidx)
}

func (s *Store) autopilotWrite(idx uint64, cfg *AutopilotConfig, cas bool, cidx uint64) (bool, error) {
	if cfg == nil {
		return false, fmt.Errorf("%w: missing autopilot config", ErrInvalidInput)
	}
	if err := cfg.Validate(); err != nil {
		return false, err
	}
	tx := s.db.Txn(true)
	defer tx.Abort()
	raw, err := tx.First(tableAutopilot, "id")
	if err != nil {
		return false, fmt.Errorf("state: read autopilot config: %w", err)
	}
	row := *cfg
	row.CreateIndex, row.ModifyIndex = idx, idx
	if raw != nil {
		existing := raw.(*AutopilotConfig)
		if cas && existing.ModifyIndex != cidx {
			return false, nil
		}
		row.CreateIndex = existing.CreateIndex
	} else if cas && cidx != 0 {
		return false, nil
	}
	if err := tx.Insert(tableAutopilot, &row); err != nil {
		return false, fmt.Errorf("state: write autopilot config: %w", err)
	}
	if err := bumpIndexTxn(tx, tableAutopilot, idx); err != nil {
		return false, err
	}
	tx.Commit()
	return true, nil
}
