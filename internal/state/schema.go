package state

import (
	"fmt"

	"github.com/hashicorp/go-memdb"
)

// Table names.
const (
	tableIndex      = "index"
	tableKVs        = "kvs"
	tableTombstones = "tombstones"
	tableNodes      = "nodes"
	tableServices   = "services"
	tableChecks     = "checks"
)

// Names of index-table entries that are not table names.
const (
	// indexServicePrefix + lower(service name) holds the last index at which
	// anything that a query about that service returns changed.
	indexServicePrefix = "service."
	// indexServiceExtinction holds the last index at which a service name
	// lost its last instance, so queries of missing services stay monotonic.
	indexServiceExtinction = "service_last_extinction"
)

// indexEntry is a row of the index table: the last Raft index at which the
// named table (or service) changed.
type indexEntry struct {
	Key   string
	Value uint64
}

// tombstone remembers the index at which a KV key was deleted so that
// prefix reads never report a smaller index after a delete.
type tombstone struct {
	Key   string
	Index uint64
}

// serviceRow is a row of the services table. Service is never modified once
// inserted.
type serviceRow struct {
	Node        string
	ServiceID   string
	ServiceName string
	Service     *NodeService
}

// schema returns the go-memdb schema of the state store.
func schema() *memdb.DBSchema {
	return &memdb.DBSchema{
		Tables: map[string]*memdb.TableSchema{
			tableIndex: {
				Name: tableIndex,
				Indexes: map[string]*memdb.IndexSchema{
					"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
				},
			},
			tableKVs: {
				Name: tableKVs,
				Indexes: map[string]*memdb.IndexSchema{
					"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
					// The keys a session holds (session.go).
					"session": {Name: "session", AllowMissing: true,
						Indexer: &memdb.StringFieldIndex{Field: "Session", Lowercase: true}},
				},
			},
			tableTombstones: {
				Name: tableTombstones,
				Indexes: map[string]*memdb.IndexSchema{
					"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Key"}},
				},
			},
			tableNodes: {
				Name: tableNodes,
				Indexes: map[string]*memdb.IndexSchema{
					"id": {Name: "id", Unique: true, Indexer: &memdb.StringFieldIndex{Field: "Node", Lowercase: true}},
					"uuid": {Name: "uuid", AllowMissing: true, Unique: true,
						Indexer: &memdb.StringFieldIndex{Field: "ID", Lowercase: true}},
				},
			},
			tableServices: {
				Name: tableServices,
				Indexes: map[string]*memdb.IndexSchema{
					"id": {Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
						&memdb.StringFieldIndex{Field: "Node", Lowercase: true},
						&memdb.StringFieldIndex{Field: "ServiceID"},
					}}},
					"node":    {Name: "node", Indexer: &memdb.StringFieldIndex{Field: "Node", Lowercase: true}},
					"service": {Name: "service", Indexer: &memdb.StringFieldIndex{Field: "ServiceName", Lowercase: true}},
				},
			},
			tableAutopilot: autopilotTableSchema(),
			// Sessions, their check bindings and lock delays (session.go).
			tableSessions:      sessionsTableSchema(),
			tableSessionChecks: sessionChecksTableSchema(),
			tableLockDelays:    lockDelaysTableSchema(),
			tableChecks: {
				Name: tableChecks,
				Indexes: map[string]*memdb.IndexSchema{
					"id": {Name: "id", Unique: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
						&memdb.StringFieldIndex{Field: "Node", Lowercase: true},
						&memdb.StringFieldIndex{Field: "CheckID"},
					}}},
					"node":   {Name: "node", Indexer: &memdb.StringFieldIndex{Field: "Node", Lowercase: true}},
					"status": {Name: "status", Indexer: &memdb.StringFieldIndex{Field: "Status", Lowercase: true}},
					"service": {Name: "service", AllowMissing: true,
						Indexer: &memdb.StringFieldIndex{Field: "ServiceName", Lowercase: true}},
					"node_service": {Name: "node_service", AllowMissing: true, Indexer: &memdb.CompoundIndex{Indexes: []memdb.Indexer{
						&memdb.StringFieldIndex{Field: "Node", Lowercase: true},
						&memdb.StringFieldIndex{Field: "ServiceID"},
					}}},
				},
			},
		},
	}
}

// newDB creates an empty database with the state store schema.
func newDB() (*memdb.MemDB, error) {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, fmt.Errorf("state: create memdb: %w", err)
	}
	return db, nil
}
