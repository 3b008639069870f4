package redisbridge

// byteArg is one argument of a command the bridge builds: bytes go-redis
// writes as a bulk string (it takes any encoding.BinaryMarshaler). A
// pointer to one goes into a command's []any without an allocation, where
// a []byte or a string takes one each, and a prefixed key one more.
type byteArg struct {
	b []byte
	// owned: b is the bridge's (a prefixed key), not the plugin's memory,
	// so a request queued for a shared pipeline need not copy it (own).
	owned bool
}

// MarshalBinary returns the argument's bytes, for go-redis to write.
func (a *byteArg) MarshalBinary() ([]byte, error) { return a.b, nil }

// String returns the argument as a string: go-redis reads a command's
// first key with fmt.Sprint to route it on a cluster.
func (a *byteArg) String() string { return string(a.b) }

// argArena holds the arguments of one request's commands: their byteArgs,
// their prefixed keys and their []any lists, each one slice sized for the
// whole request up front (newArgArena), so that building the commands
// allocates a few slices rather than one or two objects per argument.
// Past its sizes it allocates as it goes; nothing it handed out moves.
type argArena struct {
	refs []byteArg
	keys []byte
	any  []any
}

// newArgArena sizes an arena for up to refs byte arguments, keyBytes bytes
// of prefixed keys and slots arguments in all.
func newArgArena(refs, keyBytes, slots int) argArena {
	return argArena{refs: make([]byteArg, 0, refs), keys: make([]byte, 0, keyBytes), any: make([]any, 0, slots)}
}

// list returns an empty argument list with room for n.
func (a *argArena) list(n int) []any {
	if len(a.any)+n > cap(a.any) {
		return make([]any, 0, n)
	}
	start := len(a.any)
	a.any = a.any[:start+n]
	return a.any[start:start:(start + n)]
}

// bytes returns b as an argument; it aliases b.
func (a *argArena) bytes(b []byte) any {
	if len(a.refs) == cap(a.refs) {
		return &byteArg{b: b}
	}
	a.refs = append(a.refs, byteArg{b: b})
	return &a.refs[len(a.refs)-1]
}

// key returns prefix followed by k as an argument, in bytes of its own.
func (a *argArena) key(prefix string, k []byte) any {
	ref := a.bytes(nil).(*byteArg)
	a.setKey(ref, prefix, k)
	return ref
}

// setKey makes ref prefix followed by k, in bytes of its own.
func (a *argArena) setKey(ref *byteArg, prefix string, k []byte) {
	start := len(a.keys)
	a.keys = append(a.keys, prefix...)
	a.keys = append(a.keys, k...)
	ref.b, ref.owned = a.keys[start:len(a.keys):len(a.keys)], true
}
