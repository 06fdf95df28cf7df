package rpc

import "github.com/cairn-io/cairn/internal/state"

// Transaction method names. Txn.Apply goes through Raft on the leader;
// Txn.Read runs read-only operations under the usual consistency modes
// (never blocking).
const (
	MethodTxnApply = "Txn.Apply" // *TxnRequest -> *TxnResponse
	MethodTxnRead  = "Txn.Read"  // *TxnReadRequest -> *TxnReadResponse
)

// MaxTxnOps is the most operations one transaction may hold (Consul's
// limit).
const MaxTxnOps = 128

// TxnRequest is a transaction with at least one write.
type TxnRequest struct {
	Ops []*state.TxnOp
	WriteRequest
}

// TxnResponse is the outcome of a transaction: Results when it applied,
// Errors (one per failed operation) when it was rolled back.
type TxnResponse struct {
	Results []*state.TxnResult
	Errors  []*state.TxnError
}

// TxnReadRequest is a transaction of read operations only.
type TxnReadRequest struct {
	Ops []*state.TxnOp
	QueryOptions
}

// TxnReadResponse is the reply of Txn.Read.
type TxnReadResponse struct {
	TxnResponse
	QueryMeta
}

func txnMethods() map[string]methodTypes {
	return map[string]methodTypes{
		MethodTxnApply: method[TxnRequest, TxnResponse](),
		MethodTxnRead:  method[TxnReadRequest, TxnReadResponse](),
	}
}
