// Package snapshot owns Cairn's self-checking snapshot archive: the file
// that `GET /v1/snapshot` streams, `PUT /v1/snapshot` accepts and
// `cairn snapshot save|restore|inspect` handle.
//
// An archive is a tar stream (gzip-compressed when written; plain tar is
// also read) holding, in this order:
//
//	meta.json   Raft snapshot metadata (ID, index, term, version, Raft
//	            configuration) plus the Cairn version and creation time
//	state.bin   the FSM snapshot bytes, opaque to this package
//	SHA256SUMS  "<hex sha256>  <name>" lines for meta.json and state.bin
//
// Read verifies the whole archive (checksums, sizes, tar framing, gzip CRC,
// trailing data) before it hands anything to its caller, spooling state.bin
// to a temporary file rather than holding it in memory, so a corrupted or
// truncated archive is refused and never half-applied.
//
// The package knows nothing of Raft, the state store or HTTP.
package snapshot
