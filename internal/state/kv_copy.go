package state

// CopyKVEntries deep-copies entries in a few allocations: one for the
// slice, one for the entries and one for all their values (a single entry,
// the reply of KVS.Get: one for the slice and the entry, one for its value).
func CopyKVEntries(src []*KVEntry) []*KVEntry {
	if src == nil {
		return nil
	}
	if len(src) == 1 && src[0] != nil {
		one := new(struct {
			ptr [1]*KVEntry
			e   KVEntry
		})
		one.e = *src[0]
		if src[0].Value != nil {
			one.e.Value = append(make([]byte, 0, len(src[0].Value)), src[0].Value...)
		}
		one.ptr[0] = &one.e
		return one.ptr[:]
	}
	out := make([]*KVEntry, len(src))
	vals := make([]KVEntry, len(src))
	size := 0
	for _, e := range src {
		if e != nil {
			size += len(e.Value)
		}
	}
	buf := make([]byte, 0, size)
	for i, e := range src {
		if e == nil {
			continue
		}
		vals[i] = *e
		if e.Value != nil {
			start := len(buf)
			buf = append(buf, e.Value...)
			// Full slice expression: an append to one value must not
			// overwrite the next.
			vals[i].Value = buf[start:len(buf):len(buf)]
		}
		out[i] = &vals[i]
	}
	return out
}
