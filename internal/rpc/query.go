package rpc

import "time"

// Blocking query limits (Consul's defaults; the agent's default_query_time
// and max_query_time override them in ConnPoolConfig).
const (
	DefaultQueryTime = 5 * time.Minute
	MaxQueryTime     = 10 * time.Minute
	// JitterFraction: a blocking query waits up to MaxQueryTime/JitterFraction
	// longer so that many watchers do not all return at once.
	JitterFraction = 16
)

// QueryRequest is implemented by every read request through its embedded
// QueryOptions.
type QueryRequest interface {
	GetQueryOptions() *QueryOptions
}

// GetQueryOptions returns q itself, giving generic code (forwarding,
// timeouts) access to the options embedded in any read request.
func (q *QueryOptions) GetQueryOptions() *QueryOptions { return q }

// WriteRequestGetter is implemented by every write request through its
// embedded WriteRequest.
type WriteRequestGetter interface {
	GetWriteRequest() *WriteRequest
}

// GetWriteRequest returns w itself.
func (w *WriteRequest) GetWriteRequest() *WriteRequest { return w }

// blockingWait returns how long the server may hold a request before it
// must answer, and whether it is a blocking query at all.
func blockingWait(args any, defaultWait, maxWait time.Duration) (time.Duration, bool) {
	q, ok := args.(QueryRequest)
	if !ok {
		return 0, false
	}
	o := q.GetQueryOptions()
	if o.MinQueryIndex == 0 {
		return 0, false
	}
	wait := o.MaxQueryTime
	if wait <= 0 {
		wait = defaultWait
	}
	wait = min(wait, maxWait)
	return wait + wait/JitterFraction, true
}
