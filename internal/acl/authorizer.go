package acl

// Authorizer answers whether the holder of a token may perform an operation
// on a resource. Every method is a pure lookup: implementations must be safe
// for concurrent use and must not block (no I/O; resolution happens in the
// Resolver).
type Authorizer interface {
	// KeyRead reports whether the KV key may be read.
	KeyRead(key string) bool
	// KeyWrite reports whether the KV key may be written or deleted.
	KeyWrite(key string) bool
	// KeyWritePrefix reports whether every key under prefix may be written
	// (needed for a recursive delete).
	KeyWritePrefix(prefix string) bool
	// KeyList reports whether the keys under prefix may be listed.
	KeyList(prefix string) bool

	// NodeRead reports whether the catalog node may be read.
	NodeRead(name string) bool
	// NodeWrite reports whether the catalog node may be registered,
	// changed or deregistered.
	NodeWrite(name string) bool

	// ServiceRead reports whether instances of the service may be read.
	ServiceRead(name string) bool
	// ServiceWrite reports whether instances of the service may be
	// registered, changed or deregistered.
	ServiceWrite(name string) bool

	// AgentRead reports whether the agent running on node may be inspected.
	AgentRead(node string) bool
	// AgentWrite reports whether the agent running on node may be changed
	// (reload, leave, maintenance).
	AgentWrite(node string) bool

	// OperatorRead reports whether cluster-level operator data may be read.
	OperatorRead() bool
	// OperatorWrite reports whether cluster-level operator changes may be
	// made.
	OperatorWrite() bool
}

// AllowAll returns an Authorizer that permits every operation (ACLs
// disabled).
func AllowAll() Authorizer { return fixed(true) }

// DenyAll returns an Authorizer that refuses every operation.
func DenyAll() Authorizer { return fixed(false) }

// fixed answers every question with the same value.
type fixed bool

func (f fixed) KeyRead(string) bool        { return bool(f) }
func (f fixed) KeyWrite(string) bool       { return bool(f) }
func (f fixed) KeyWritePrefix(string) bool { return bool(f) }
func (f fixed) KeyList(string) bool        { return bool(f) }
func (f fixed) NodeRead(string) bool       { return bool(f) }
func (f fixed) NodeWrite(string) bool      { return bool(f) }
func (f fixed) ServiceRead(string) bool    { return bool(f) }
func (f fixed) ServiceWrite(string) bool   { return bool(f) }
func (f fixed) AgentRead(string) bool      { return bool(f) }
func (f fixed) AgentWrite(string) bool     { return bool(f) }
func (f fixed) OperatorRead() bool         { return bool(f) }
func (f fixed) OperatorWrite() bool        { return bool(f) }
