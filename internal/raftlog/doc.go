// Package raftlog is the durable Raft log and stable store of a Cairn
// server: hashicorp/raft's LogStore on append-only segment files, with one
// fdatasync per append batch, and its StableStore in a small file replaced
// atomically.
//
// Why not raft-boltdb: a bbolt commit costs two fdatasyncs (data pages,
// then the meta page), and hashicorp/raft writes the leader's log before it
// replicates, so a single put waited for four syncs in a row across leader
// and follower. Why not raft-wal: v0.4.0, the newest served here, cannot
// reopen its log after a crash that followed a log-suffix truncation
// (hashicorp/raft-wal#31).
//
// On disk, in one directory:
//
//	00000000000000000001.wal   segment: header, then records
//	00000000000000052817.wal   named by the index of its first record
//	stable                     the stable store (key/values + CRC)
//
// A segment starts with an 8-byte magic and its base index; each record is
// a 4-byte length and a 4-byte CRC-32C of the payload, then the payload:
// index, term, type, append time, data and extensions. Records are written
// at the end of the last segment only; a segment is replaced by a new one
// when it passes the size limit. Indexes are contiguous across all
// segments (the store is a raft.MonotonicLogStore).
//
// Crash safety: an append batch is one write followed by one fdatasync, and
// is acknowledged only after the sync. On open, every segment is scanned
// and checked; a record that is short or fails its CRC at the end of the
// last segment is a torn write and is cut off (the batch it belonged to was
// never acknowledged). Damage anywhere else is an error, never skipped.
// Deleting a suffix (Raft's conflict truncation) removes later segments
// from the last one backwards and then truncates, so a crash at any point
// leaves a contiguous prefix of the log as it was before; deleting a prefix
// (compaction) removes whole segments from the front.
//
// Preallocation: a goroutine keeps zeros written and synced ahead of the
// appends in the last segment (Options.Preallocate, 1 MiB by default), so
// an append usually overwrites blocks already on disk and its fdatasync has
// no file size to commit: 90-104 µs instead of 136-142 µs per 1 KiB append
// on ext4 (BenchmarkAppend1KiB). Only zeros are ever written ahead, and the
// rules that keep truncated bytes from reappearing hold: on open, the bytes
// after the last valid record must be all zero to count as free space; a
// record that is short, fails its CRC, or is zero where later bytes are not
// (pages of a batch can reach the disk in any order) is a torn write, and
// cutting it off truncates the file there, zeros and all. A suffix deletion
// truncates the file at the cut, dropping its zeros too; the preallocator
// then writes fresh zeros from the new end.
package raftlog
