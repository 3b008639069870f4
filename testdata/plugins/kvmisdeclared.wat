;; Build: wat2wasm kvmisdeclared.wat -o kvmisdeclared.wasm   (or build.sh for every fixture)
;;
;; kvmisdeclared: agentstate.wat on ABI 1.8 declaring a kv read of its agent
;; states at "s" 0x00, the key it writes, but keeping its own value layout
;; (updated_at, then the document), which is not the AgentState encoding a
;; kv read promises (abi/README.md, section 10.9). It loads and serves, as
;; the host calls it for every entry that is not the record; the
;; conformance suite's KVReads rule fails it. The rest of this file is
;; agentstate.wat's, whose comments follow.
;;
;; Build: wat2wasm agentstate.wat -o agentstate.wasm   (or ./build.sh for every fixture)
;;
;; agentstate: a storage-host plugin written by hand in WebAssembly text.
;;
;; It is the reference example for authors writing plugins in languages other
;; than Go: everything the Go SDK does for a plugin is spelled out here, with
;; no runtime, no allocator library and no WASI. abi/README.md is the
;; specification; the names below follow it.
;;
;; What the plugin does
;;   Features:      agent_states only (no query, batch, ttl, concurrency).
;;   Capabilities:  log, clock, kv.
;;   Ops:           ping, configure, put/get/delete agent state. Every other op
;;                  is answered with StatusUnsupported.
;;   Options:       none; configure refuses any option with StatusInvalid.
;;
;; Storage layout in the host's kv store (storagehost_kv)
;;   key:   "s" 0x00 agent_id      (agent IDs never hold NUL; see $check_id)
;;   value: updated_at varint      (Unix ns from storagehost_clock.now)
;;          state                  (the opaque document, to the end of value)
;;   The AgentState version is the kv revision, which changes on every write.
;;   Nothing expires: entries are written with expires_at 0, and expires_at is
;;   reported back as the kv store reports it (always 0 here).
;;
;; The ABI in one paragraph
;;   The host calls storage_abi_version first, then storage_metadata, then for
;;   every request: storage_reserve(len) for a region to write the request
;;   into (only when the request is larger than the last region), and
;;   storage_call(op, len). storage_call returns a packed region (pointer in
;;   the high 32 bits, length in the low 32) holding the response: one status
;;   byte, then the op's result (StatusOK) or a UTF-8 error message. The
;;   response must stay readable until the next export call.
;;
;; Encoding (abi/README.md, section 7)
;;   u8       one byte
;;   uvarint  unsigned LEB128, at most 10 bytes
;;   varint   zig-zag, then uvarint; times are varint Unix ns, 0 = unset
;;   bytes    uvarint length, then the bytes; a string is bytes of UTF-8
;;
;; Memory
;;   0x0000 .. 0x07ff  static data: the metadata and the messages below
;;   0x0800 .. +len    the request region storage_reserve hands out
;;   arena_base ..     a bump arena for everything one call builds: kv
;;                     requests, kv responses, the response. It is reset at
;;                     the start of every storage_call, which is what makes
;;                     "valid until the next export call" hold for free.
;;   Memory grows on demand; if it cannot grow the plugin traps, and the host
;;   discards this instance and answers StatusInternal.
;;
;; Status codes used (abi/README.md, section 8)
;;   0 ok, 1 not found, 3 invalid, 5 unsupported, 6 internal.

(module
  ;; ---------------------------------------------------------------------
  ;; Host capabilities. Each import module is "storagehost_" + capability,
  ;; and every capability imported must be declared in the metadata.
  ;; ---------------------------------------------------------------------

  ;; write(level, ptr, len): one log line; levels 1 trace .. 5 error.
  (import "storagehost_log" "write"
    (func $log_write (param $level i32) (param $ptr i32) (param $len i32)))

  ;; now() -> Unix nanoseconds of the host clock (tests can fake it).
  (import "storagehost_clock" "now"
    (func $clock_now (result i64)))

  ;; call(req_ptr, req_len, out_ptr, out_cap) -> response length. The
  ;; response was written at out_ptr only if it fits in out_cap; otherwise
  ;; the host keeps it and result(out_ptr, out_cap) copies it once we have
  ;; made room. A kv response is, like ours, a status byte then a body.
  (import "storagehost_kv" "call"
    (func $kv_call (param $req_ptr i32) (param $req_len i32)
                   (param $out_ptr i32) (param $out_cap i32) (result i32)))
  (import "storagehost_kv" "result"
    (func $kv_result (param $out_ptr i32) (param $out_cap i32) (result i32)))

  ;; The host reads and writes this memory; it must be exported as "memory".
  (memory (export "memory") 1)

  ;; ---------------------------------------------------------------------
  ;; Constants
  ;; ---------------------------------------------------------------------

  ;; Where the request region starts; everything below is static data.
  (global $REQ_BASE i32 (i32.const 0x0800))
  ;; First guess at the size of a kv response; larger ones go through
  ;; storagehost_kv.result.
  (global $KV_OUT i32 (i32.const 256))
  ;; abi.MaxIDLength
  (global $MAX_ID i32 (i32.const 512))

  ;; Status codes.
  (global $OK i32 (i32.const 0))
  (global $NOT_FOUND i32 (i32.const 1))
  (global $INVALID i32 (i32.const 3))
  (global $UNSUPPORTED i32 (i32.const 5))
  (global $INTERNAL i32 (i32.const 6))

  ;; kv operations (abi.KVOp).
  (global $KV_GET i32 (i32.const 1))
  (global $KV_PUT i32 (i32.const 2))
  (global $KV_DELETE i32 (i32.const 3))

  ;; ---------------------------------------------------------------------
  ;; Static data. The metadata is the exact bytes storage_metadata returns;
  ;; messages are NUL-terminated so that no length has to be counted by
  ;; hand ($put_cstr copies up to the NUL, which is never sent).
  ;; ---------------------------------------------------------------------

  ;; Metadata (abi.Metadata.Encode), 42 bytes:
  ;;   abi major 1, abi minor 0                uvarint, uvarint
  ;;   name "agentstate", version "1.0.0"      string, string
  ;;   features 4 = FeatureAgentStates         uvarint
  ;;   capabilities: 3 of them                 count, then strings
;;   kv_reads: 1, agent states (3) at "s" 0  count, then kind u8 and prefix bytes
  (global $METADATA i32 (i32.const 0x000))
  (global $METADATA_LEN i32 (i32.const 42))
  (data (i32.const 0x000)
    "\01" "\08"
    "\0d" "kvmisdeclared"
    "\05" "1.0.0"
    "\04"
    "\03" "\03" "log" "\05" "clock" "\02" "kv"
    "\01" "\03" "\02" "s\00")

  (global $S_MALFORMED i32 (i32.const 0x040))
  (data (i32.const 0x040) "malformed request\00")
  (global $S_NO_OPTIONS i32 (i32.const 0x080))
  (data (i32.const 0x080) "agentstate takes no options, got \22\00")
  (global $S_QUOTE i32 (i32.const 0x0c0))
  (data (i32.const 0x0c0) "\22\00")
  (global $S_CONFIGURED i32 (i32.const 0x100))
  (data (i32.const 0x100) "agentstate configured: agent states live in the host kv store\00")
  (global $S_UNKNOWN_OP i32 (i32.const 0x140))
  (data (i32.const 0x140) "agentstate does not support op \00")
  (global $S_NO_TTL i32 (i32.const 0x180))
  (data (i32.const 0x180) "agentstate does not support TTLs\00")
  (global $S_NO_COND i32 (i32.const 0x1c0))
  (data (i32.const 0x1c0) "agentstate does not support conditional writes\00")
  (global $S_TTL_MODE i32 (i32.const 0x200))
  (data (i32.const 0x200) "unknown ttl mode \00")
  (global $S_TTL_SHORT i32 (i32.const 0x240))
  (data (i32.const 0x240) "ttl duration is below 1ms\00")
  (global $S_ID_EMPTY i32 (i32.const 0x280))
  (data (i32.const 0x280) "agent id is empty\00")
  (global $S_ID_LONG i32 (i32.const 0x2c0))
  (data (i32.const 0x2c0) "agent id is longer than 512 bytes\00")
  (global $S_ID_UTF8 i32 (i32.const 0x300))
  (data (i32.const 0x300) "agent id is not valid UTF-8\00")
  (global $S_ID_NUL i32 (i32.const 0x340))
  (data (i32.const 0x340) "agent id contains a NUL byte\00")
  (global $S_AGENT_STATE i32 (i32.const 0x380))
  (data (i32.const 0x380) "agent state \22\00")
  (global $S_NOT_FOUND i32 (i32.const 0x3c0))
  (data (i32.const 0x3c0) "\22: not found\00")
  (global $S_KV_STATUS i32 (i32.const 0x400))
  (data (i32.const 0x400) "kv store answered status \00")
  (global $S_COLON i32 (i32.const 0x440))
  (data (i32.const 0x440) ": \00")
  (global $S_KV_MALFORMED i32 (i32.const 0x480))
  (data (i32.const 0x480) "malformed kv response\00")
  (global $S_CORRUPT i32 (i32.const 0x4c0))
  (data (i32.const 0x4c0) "corrupt agent state record in the kv store\00")

  ;; ---------------------------------------------------------------------
  ;; State. A wasm instance is only ever used by one host call at a time,
  ;; so plain globals are safe.
  ;; ---------------------------------------------------------------------

  ;; Arena: $heap is the next free byte; it restarts at $arena_base, just
  ;; past the request region, on every storage_call.
  (global $arena_base (mut i32) (i32.const 0x0800))
  (global $heap (mut i32) (i32.const 0x0800))
  ;; Writer: the next byte a $put_* writes. Between $begin and $end nothing
  ;; else may be allocated, so a message is one contiguous run of bytes.
  (global $wr (mut i32) (i32.const 0))
  ;; Reader: the unread input is [$rd, $rd_end). A read past the end or a
  ;; malformed value sets $bad, and every later read then yields 0, so a
  ;; decoder can read a whole message and check $bad once ($done).
  (global $rd (mut i32) (i32.const 0))
  (global $rd_end (mut i32) (i32.const 0))
  (global $bad (mut i32) (i32.const 0))
  ;; The last field $get_field read: it points into the input, no copy.
  (global $f_ptr (mut i32) (i32.const 0))
  (global $f_len (mut i32) (i32.const 0))

  ;; ---------------------------------------------------------------------
  ;; The ABI exports
  ;; ---------------------------------------------------------------------

  ;; The packed ABI version this plugin was built for: major 1, minor 0.
  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010008))

  ;; The encoded metadata, as a packed region.
  (func (export "storage_metadata") (result i64)
    (call $pack (global.get $METADATA) (global.get $METADATA_LEN)))

  ;; A region of at least $size bytes for the host to write the next request
  ;; into. It is always at $REQ_BASE; the arena moves to just past it.
  (func (export "storage_reserve") (param $size i32) (result i32)
    ;; The request region cannot take more than the 4 GiB address space.
    (if (i32.gt_u (local.get $size) (i32.const 0x7fff0000))
      (then unreachable))
    (global.set $arena_base
      (call $align8 (i32.add (global.get $REQ_BASE) (local.get $size))))
    (call $grow_to (global.get $arena_base))
    (global.get $REQ_BASE))

  ;; Serve one request of $len bytes at $REQ_BASE and return the response.
  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    ;; Everything the previous call built is garbage now.
    (global.set $heap (global.get $arena_base))
    ;; The request may not run past the region storage_reserve handed out.
    (if (i32.gt_u (local.get $len)
                  (i32.sub (global.get $arena_base) (global.get $REQ_BASE)))
      (then (return (call $error (global.get $INVALID) (global.get $S_MALFORMED)))))
    (call $read_from (global.get $REQ_BASE) (local.get $len))
    ;; Op numbers: abi/ops.go.
    (if (i32.eq (local.get $op) (i32.const 1))
      (then (return (call $op_ping))))
    (if (i32.eq (local.get $op) (i32.const 2))
      (then (return (call $op_configure))))
    (if (i32.eq (local.get $op) (i32.const 30))
      (then (return (call $op_put_agent_state))))
    (if (i32.eq (local.get $op) (i32.const 31))
      (then (return (call $op_get_agent_state))))
    (if (i32.eq (local.get $op) (i32.const 32))
      (then (return (call $op_delete_agent_state))))
    (call $op_unknown (local.get $op)))

  ;; ---------------------------------------------------------------------
  ;; Operations
  ;; ---------------------------------------------------------------------

  ;; OpPing (1): empty -> empty.
  (func $op_ping (result i64)
    (call $ok_empty))

  ;; OpConfigure (2): Options (count uvarint, then key string, value string
  ;; pairs) -> empty. Sent once to every new instance before any request.
  ;; This plugin takes no options, so any option is an error: a typo in the
  ;; host configuration must not pass silently.
  (func $op_configure (result i64)
    (local $count i64)
    (local $s i32)
    (local.set $count (call $get_uvarint))
    (if (global.get $bad)
      (then (return (call $error (global.get $INVALID) (global.get $S_MALFORMED)))))
    (if (i64.ne (local.get $count) (i64.const 0))
      (then
        ;; Name the first option in the message.
        (call $get_field)
        (if (global.get $bad)
          (then (return (call $error (global.get $INVALID) (global.get $S_MALFORMED)))))
        (local.set $s (call $begin))
        (call $put_u8 (global.get $INVALID))
        (call $put_cstr (global.get $S_NO_OPTIONS))
        (call $put_raw (global.get $f_ptr) (global.get $f_len))
        (call $put_cstr (global.get $S_QUOTE))
        (return (call $reply (local.get $s)))))
    (if (i32.eqz (call $done))
      (then (return (call $error (global.get $INVALID) (global.get $S_MALFORMED)))))
    ;; Level 3 is info (abi.LevelInfo).
    (call $log_write (i32.const 3)
      (global.get $S_CONFIGURED) (call $strlen (global.get $S_CONFIGURED)))
    (call $ok_empty))

  ;; OpPutAgentState (30): PutAgentState -> AgentState.
  ;;   request:  agent_id string, state bytes, version uvarint,
  ;;             updated_at time, expires_at time   (the AgentState)
  ;;             ttl mode u8 [, milliseconds uvarint when mode is 1]
  ;;             condition mode u8 [, version uvarint when mode is 1]
  ;;   response: agent_id string, state bytes, version uvarint,
  ;;             updated_at time, expires_at time
  ;; The request's version, updated_at and expires_at are ignored: the
  ;; backend sets them.
  (func $op_put_agent_state (result i64)
    (local $id i32) (local $id_len i32)
    (local $state i32) (local $state_len i32)
    (local $ttl i32) (local $ttl_ms i64) (local $cond i32)
    (local $msg i32) (local $now i64)
    (local $val i32) (local $val_len i32)
    (local $req i32) (local $req_len i32)
    (local $status i32) (local $rev i64) (local $exp i64)
    (local $s i32)

    ;; 1. Decode the whole request, then check it.
    (call $get_field)
    (local.set $id (global.get $f_ptr))
    (local.set $id_len (global.get $f_len))
    (call $get_field)
    (local.set $state (global.get $f_ptr))
    (local.set $state_len (global.get $f_len))
    (drop (call $get_uvarint)) ;; version
    (drop (call $get_uvarint)) ;; updated_at (a varint; skipping needs no zig-zag)
    (drop (call $get_uvarint)) ;; expires_at
    (local.set $ttl (call $get_u8))
    (if (i32.eq (local.get $ttl) (i32.const 1))
      (then (local.set $ttl_ms (call $get_uvarint))))
    (local.set $cond (call $get_u8))
    (if (i32.eq (local.get $cond) (i32.const 1))
      (then (drop (call $get_uvarint))))
    ;; Condition modes above 2 (IfAbsent) are malformed, as abi decodes them.
    (if (i32.or (i32.eqz (call $done)) (i32.gt_u (local.get $cond) (i32.const 2)))
      (then (return (call $error (global.get $INVALID) (global.get $S_MALFORMED)))))

    ;; 2. TTL: an unknown mode or a zero duration is invalid (abi.TTL.Check);
    ;; any mode but TTLDefault (0) needs FeatureTTL, which we do not
    ;; advertise. The host refuses these before calling us; a plugin still
    ;; checks, because the ABI does not promise that.
    (if (i32.gt_u (local.get $ttl) (i32.const 3))
      (then
        (local.set $s (call $begin))
        (call $put_u8 (global.get $INVALID))
        (call $put_cstr (global.get $S_TTL_MODE))
        (call $put_dec (local.get $ttl))
        (return (call $reply (local.get $s)))))
    (if (i32.and (i32.eq (local.get $ttl) (i32.const 1)) (i64.eqz (local.get $ttl_ms)))
      (then (return (call $error (global.get $INVALID) (global.get $S_TTL_SHORT)))))
    (if (local.get $ttl)
      (then (return (call $error (global.get $UNSUPPORTED) (global.get $S_NO_TTL)))))
    ;; Conditions need FeatureConcurrency, which we do not advertise either.
    (if (local.get $cond)
      (then (return (call $error (global.get $UNSUPPORTED) (global.get $S_NO_COND)))))
    (local.set $msg (call $check_id (local.get $id) (local.get $id_len)))
    (if (local.get $msg)
      (then (return (call $error (global.get $INVALID) (local.get $msg)))))

    ;; 3. The kv value: updated_at, then the state document.
    (local.set $now (call $clock_now))
    (local.set $val (call $begin))
    (call $put_varint (local.get $now))
    (call $put_raw (local.get $state) (local.get $state_len))
    (local.set $val_len (call $end (local.get $val)))

    ;; 4. KVPut: op u8, key bytes, value bytes, expires_at time,
    ;; keep_ttl bool, condition (mode u8).
    (local.set $req (call $begin))
    (call $put_u8 (global.get $KV_PUT))
    (call $put_key (local.get $id) (local.get $id_len))
    (call $put_field (local.get $val) (local.get $val_len))
    (call $put_u8 (i32.const 0)) ;; expires_at: never
    (call $put_u8 (i32.const 0)) ;; keep_ttl: false
    (call $put_u8 (i32.const 0)) ;; condition: Unconditional
    (local.set $req_len (call $end (local.get $req)))

    ;; 5. Call the host; the reader now points at the kv response:
    ;; status u8, then revision uvarint, expires_at time.
    (call $kv (local.get $req) (local.get $req_len))
    (local.set $status (call $get_u8))
    (if (global.get $bad)
      (then (return (call $error (global.get $INTERNAL) (global.get $S_KV_MALFORMED)))))
    (if (local.get $status)
      (then (return (call $kv_failed (local.get $status) (local.get $id) (local.get $id_len)))))
    (local.set $rev (call $get_uvarint))
    (local.set $exp (call $get_varint))
    (if (i32.eqz (call $done))
      (then (return (call $error (global.get $INTERNAL) (global.get $S_KV_MALFORMED)))))

    ;; 6. The stored AgentState. The state bytes are still in the request
    ;; region, which nothing in this call overwrites.
    (local.set $s (call $begin))
    (call $put_u8 (global.get $OK))
    (call $put_field (local.get $id) (local.get $id_len))
    (call $put_field (local.get $state) (local.get $state_len))
    (call $put_uvarint (local.get $rev))
    (call $put_varint (local.get $now))
    (call $put_varint (local.get $exp))
    (call $reply (local.get $s)))

  ;; OpGetAgentState (31): agent_id string -> AgentState, or StatusNotFound.
  (func $op_get_agent_state (result i64)
    (local $id i32) (local $id_len i32) (local $msg i32)
    (local $req i32) (local $req_len i32)
    (local $status i32) (local $rev i64) (local $exp i64)
    (local $updated i64) (local $state i32) (local $state_len i32)
    (local $s i32)

    (call $get_field)
    (local.set $id (global.get $f_ptr))
    (local.set $id_len (global.get $f_len))
    (if (i32.eqz (call $done))
      (then (return (call $error (global.get $INVALID) (global.get $S_MALFORMED)))))
    (local.set $msg (call $check_id (local.get $id) (local.get $id_len)))
    (if (local.get $msg)
      (then (return (call $error (global.get $INVALID) (local.get $msg)))))

    ;; KVGet: op u8, key bytes.
    (local.set $req (call $begin))
    (call $put_u8 (global.get $KV_GET))
    (call $put_key (local.get $id) (local.get $id_len))
    (local.set $req_len (call $end (local.get $req)))

    ;; Response: status u8, then revision uvarint, expires_at time,
    ;; value bytes.
    (call $kv (local.get $req) (local.get $req_len))
    (local.set $status (call $get_u8))
    (if (global.get $bad)
      (then (return (call $error (global.get $INTERNAL) (global.get $S_KV_MALFORMED)))))
    (if (local.get $status)
      (then (return (call $kv_failed (local.get $status) (local.get $id) (local.get $id_len)))))
    (local.set $rev (call $get_uvarint))
    (local.set $exp (call $get_varint))
    (call $get_field)
    (if (i32.eqz (call $done))
      (then (return (call $error (global.get $INTERNAL) (global.get $S_KV_MALFORMED)))))

    ;; Our value: updated_at varint, then the state to the end.
    (call $read_from (global.get $f_ptr) (global.get $f_len))
    (local.set $updated (call $get_varint))
    (if (global.get $bad)
      (then (return (call $error (global.get $INTERNAL) (global.get $S_CORRUPT)))))
    (local.set $state (global.get $rd))
    (local.set $state_len (i32.sub (global.get $rd_end) (global.get $rd)))

    ;; The response is built past the kv response, which it copies from.
    (local.set $s (call $begin))
    (call $put_u8 (global.get $OK))
    (call $put_field (local.get $id) (local.get $id_len))
    (call $put_field (local.get $state) (local.get $state_len))
    (call $put_uvarint (local.get $rev))
    (call $put_varint (local.get $updated))
    (call $put_varint (local.get $exp))
    (call $reply (local.get $s)))

  ;; OpDeleteAgentState (32): agent_id string, condition -> empty, or
  ;; StatusNotFound.
  (func $op_delete_agent_state (result i64)
    (local $id i32) (local $id_len i32) (local $cond i32) (local $msg i32)
    (local $req i32) (local $req_len i32) (local $status i32)

    (call $get_field)
    (local.set $id (global.get $f_ptr))
    (local.set $id_len (global.get $f_len))
    (local.set $cond (call $get_u8))
    (if (i32.eq (local.get $cond) (i32.const 1))
      (then (drop (call $get_uvarint))))
    (if (i32.or (i32.eqz (call $done)) (i32.gt_u (local.get $cond) (i32.const 2)))
      (then (return (call $error (global.get $INVALID) (global.get $S_MALFORMED)))))
    (if (local.get $cond)
      (then (return (call $error (global.get $UNSUPPORTED) (global.get $S_NO_COND)))))
    (local.set $msg (call $check_id (local.get $id) (local.get $id_len)))
    (if (local.get $msg)
      (then (return (call $error (global.get $INVALID) (local.get $msg)))))

    ;; KVDelete: op u8, key bytes, condition (mode u8).
    (local.set $req (call $begin))
    (call $put_u8 (global.get $KV_DELETE))
    (call $put_key (local.get $id) (local.get $id_len))
    (call $put_u8 (i32.const 0)) ;; condition: Unconditional
    (local.set $req_len (call $end (local.get $req)))

    ;; Response: status u8, empty body when OK.
    (call $kv (local.get $req) (local.get $req_len))
    (local.set $status (call $get_u8))
    (if (global.get $bad)
      (then (return (call $error (global.get $INTERNAL) (global.get $S_KV_MALFORMED)))))
    (if (local.get $status)
      (then (return (call $kv_failed (local.get $status) (local.get $id) (local.get $id_len)))))
    (call $ok_empty))

  ;; Any other op: StatusUnsupported, naming the op number. The host does
  ;; not send ops needing features we do not advertise, but a plugin must
  ;; not assume it: a newer host may know ops this plugin has never heard of.
  (func $op_unknown (param $op i32) (result i64)
    (local $s i32)
    (local.set $s (call $begin))
    (call $put_u8 (global.get $UNSUPPORTED))
    (call $put_cstr (global.get $S_UNKNOWN_OP))
    (call $put_dec (local.get $op))
    (call $reply (local.get $s)))

  ;; ---------------------------------------------------------------------
  ;; The kv capability
  ;; ---------------------------------------------------------------------

  ;; Run the kv request at [$req, +$len) and point the reader at the
  ;; response. Most responses fit in $KV_OUT bytes; a larger one (a big
  ;; state document) is fetched with storagehost_kv.result into a buffer of
  ;; the size call returned.
  (func $kv (param $req i32) (param $len i32)
    (local $out i32) (local $n i32)
    (local.set $out (call $alloc (global.get $KV_OUT)))
    (local.set $n (call $kv_call (local.get $req) (local.get $len)
                                 (local.get $out) (global.get $KV_OUT)))
    (if (i32.gt_u (local.get $n) (global.get $KV_OUT))
      (then
        (local.set $out (call $alloc (local.get $n)))
        (local.set $n (call $kv_result (local.get $out) (local.get $n)))))
    (call $read_from (local.get $out) (local.get $n)))

  ;; Turn a non-OK kv status into our response. The reader is just past
  ;; the status byte, so the rest of the kv response is its message.
  ;; NotFound is the caller's answer; anything else means the kv store
  ;; refused what this plugin built, which is the plugin's fault: internal.
  (func $kv_failed (param $status i32) (param $id i32) (param $id_len i32) (result i64)
    (local $s i32)
    (local.set $s (call $begin))
    (if (i32.eq (local.get $status) (global.get $NOT_FOUND))
      (then
        (call $put_u8 (global.get $NOT_FOUND))
        (call $put_cstr (global.get $S_AGENT_STATE))
        (call $put_raw (local.get $id) (local.get $id_len))
        (call $put_cstr (global.get $S_NOT_FOUND))
        (return (call $reply (local.get $s)))))
    (call $put_u8 (global.get $INTERNAL))
    (call $put_cstr (global.get $S_KV_STATUS))
    (call $put_dec (local.get $status))
    (call $put_cstr (global.get $S_COLON))
    (call $put_raw (global.get $rd) (i32.sub (global.get $rd_end) (global.get $rd)))
    (call $reply (local.get $s)))

  ;; Write the kv key of an agent state as a bytes field: "s" 0x00 agent_id.
  (func $put_key (param $id i32) (param $id_len i32)
    (call $put_uvarint (i64.extend_i32_u (i32.add (local.get $id_len) (i32.const 2))))
    (call $put_u8 (i32.const 0x73)) ;; "s"
    (call $put_u8 (i32.const 0))
    (call $put_raw (local.get $id) (local.get $id_len)))

  ;; ---------------------------------------------------------------------
  ;; Validation (abi.CheckID)
  ;; ---------------------------------------------------------------------

  ;; 0 when [$p, +$n) is a usable ID: non-empty, at most 512 bytes, valid
  ;; UTF-8, no NUL. Otherwise the message saying why.
  (func $check_id (param $p i32) (param $n i32) (result i32)
    (local $i i32)
    (if (i32.eqz (local.get $n))
      (then (return (global.get $S_ID_EMPTY))))
    (if (i32.gt_u (local.get $n) (global.get $MAX_ID))
      (then (return (global.get $S_ID_LONG))))
    (if (i32.eqz (call $valid_utf8 (local.get $p) (local.get $n)))
      (then (return (global.get $S_ID_UTF8))))
    (block $end
      (loop $scan
        (br_if $end (i32.ge_u (local.get $i) (local.get $n)))
        (if (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $i))))
          (then (return (global.get $S_ID_NUL))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (i32.const 0))

  ;; 1 when [$p, +$n) is valid UTF-8 as Go's utf8.Valid sees it: no
  ;; overlong forms, no surrogates, nothing above U+10FFFF.
  (func $valid_utf8 (param $p i32) (param $n i32) (result i32)
    (local $i i32) (local $b i32) (local $need i32) (local $lo i32) (local $hi i32)
    (block $end
      (loop $next
        (br_if $end (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $b (i32.load8_u (i32.add (local.get $p) (local.get $i))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br_if $next (i32.lt_u (local.get $b) (i32.const 0x80))) ;; ASCII
        ;; A lead byte says how many continuation bytes follow ($need) and
        ;; the range the first of them must fall in ([$lo, $hi]); the
        ;; others are always 0x80..0xbf.
        (local.set $lo (i32.const 0x80))
        (local.set $hi (i32.const 0xbf))
        (if (i32.lt_u (local.get $b) (i32.const 0xc2))
          ;; a continuation byte with no lead, or an overlong 2-byte form
          (then (return (i32.const 0))))
        (if (i32.lt_u (local.get $b) (i32.const 0xe0))
          (then (local.set $need (i32.const 1)))
          (else
            (if (i32.lt_u (local.get $b) (i32.const 0xf0))
              (then
                (local.set $need (i32.const 2))
                (if (i32.eq (local.get $b) (i32.const 0xe0)) ;; overlong
                  (then (local.set $lo (i32.const 0xa0))))
                (if (i32.eq (local.get $b) (i32.const 0xed)) ;; surrogates
                  (then (local.set $hi (i32.const 0x9f)))))
              (else
                (if (i32.lt_u (local.get $b) (i32.const 0xf5))
                  (then
                    (local.set $need (i32.const 3))
                    (if (i32.eq (local.get $b) (i32.const 0xf0)) ;; overlong
                      (then (local.set $lo (i32.const 0x90))))
                    (if (i32.eq (local.get $b) (i32.const 0xf4)) ;; above U+10FFFF
                      (then (local.set $hi (i32.const 0x8f)))))
                  (else (return (i32.const 0))))))))
        (if (i32.gt_u (local.get $need) (i32.sub (local.get $n) (local.get $i)))
          (then (return (i32.const 0)))) ;; truncated sequence
        (loop $cont
          (local.set $b (i32.load8_u (i32.add (local.get $p) (local.get $i))))
          (if (i32.or (i32.lt_u (local.get $b) (local.get $lo))
                      (i32.gt_u (local.get $b) (local.get $hi)))
            (then (return (i32.const 0))))
          (local.set $lo (i32.const 0x80))
          (local.set $hi (i32.const 0xbf))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (local.set $need (i32.sub (local.get $need) (i32.const 1)))
          (br_if $cont (local.get $need)))
        (br $next)))
    (i32.const 1))

  ;; ---------------------------------------------------------------------
  ;; Responses
  ;; ---------------------------------------------------------------------

  ;; Pack a guest region the way storage_metadata and storage_call return
  ;; it: pointer in the high 32 bits, length in the low 32.
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  ;; Finish the response started at $s (with $begin) and return its region.
  (func $reply (param $s i32) (result i64)
    (local $len i32)
    (local.set $len (call $end (local.get $s)))
    (call $pack (local.get $s) (local.get $len)))

  ;; A response with status OK and an empty body.
  (func $ok_empty (result i64)
    (local $s i32)
    (local.set $s (call $begin))
    (call $put_u8 (global.get $OK))
    (call $reply (local.get $s)))

  ;; An error response: $status, then the NUL-terminated message at $msg.
  (func $error (param $status i32) (param $msg i32) (result i64)
    (local $s i32)
    (local.set $s (call $begin))
    (call $put_u8 (local.get $status))
    (call $put_cstr (local.get $msg))
    (call $reply (local.get $s)))

  ;; ---------------------------------------------------------------------
  ;; Arena and memory
  ;; ---------------------------------------------------------------------

  (func $align8 (param $n i32) (result i32)
    (i32.and (i32.add (local.get $n) (i32.const 7)) (i32.const -8)))

  ;; Grow memory until addresses below $end exist; trap if it cannot.
  (func $grow_to (param $end i32)
    (local $pages i32)
    ;; Pages of 64 KiB covering [0, $end), computed in 64 bits so that an
    ;; $end near 4 GiB does not wrap.
    (local.set $pages (i32.wrap_i64
      (i64.shr_u (i64.add (i64.extend_i32_u (local.get $end)) (i64.const 0xffff))
                 (i64.const 16))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size)))
                    (i32.const -1))
          (then unreachable)))))

  ;; $n bytes from the arena. Not between $begin and $end.
  (func $alloc (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (if (i32.gt_u (local.get $n) (i32.sub (i32.const -8) (local.get $p)))
      (then unreachable)) ;; would wrap around the address space
    (global.set $heap (call $align8 (i32.add (local.get $p) (local.get $n))))
    (call $grow_to (global.get $heap))
    (local.get $p))

  ;; ---------------------------------------------------------------------
  ;; Writer: $begin, any number of $put_*, then $end.
  ;; ---------------------------------------------------------------------

  ;; Start writing at the top of the arena; returns where the bytes start.
  (func $begin (result i32)
    (global.set $wr (global.get $heap))
    (global.get $heap))

  ;; Stop writing: the bytes since $s become an allocation. Returns their
  ;; length.
  (func $end (param $s i32) (result i32)
    (global.set $heap (call $align8 (global.get $wr)))
    (i32.sub (global.get $wr) (local.get $s)))

  ;; Make room for $n more bytes at $wr.
  (func $ensure (param $n i32)
    (if (i32.gt_u (local.get $n) (i32.sub (i32.const -1) (global.get $wr)))
      (then unreachable))
    (call $grow_to (i32.add (global.get $wr) (local.get $n))))

  (func $put_u8 (param $b i32)
    (call $ensure (i32.const 1))
    (i32.store8 (global.get $wr) (local.get $b))
    (global.set $wr (i32.add (global.get $wr) (i32.const 1))))

  (func $put_raw (param $p i32) (param $n i32)
    (call $ensure (local.get $n))
    (memory.copy (global.get $wr) (local.get $p) (local.get $n))
    (global.set $wr (i32.add (global.get $wr) (local.get $n))))

  ;; Unsigned LEB128: 7 bits a byte, low bits first, high bit = more.
  (func $put_uvarint (param $v i64)
    (block $last
      (loop $more
        (br_if $last (i64.lt_u (local.get $v) (i64.const 0x80)))
        (call $put_u8 (i32.or (i32.wrap_i64 (i64.and (local.get $v) (i64.const 0x7f)))
                              (i32.const 0x80)))
        (local.set $v (i64.shr_u (local.get $v) (i64.const 7)))
        (br $more)))
    (call $put_u8 (i32.wrap_i64 (local.get $v))))

  ;; Zig-zag: 0, -1, 1, -2, ... become 0, 1, 2, 3, ...
  (func $put_varint (param $v i64)
    (call $put_uvarint
      (i64.xor (i64.shl (local.get $v) (i64.const 1))
               (i64.shr_s (local.get $v) (i64.const 63)))))

  ;; A bytes (or string) field: uvarint length, then the bytes.
  (func $put_field (param $p i32) (param $n i32)
    (call $put_uvarint (i64.extend_i32_u (local.get $n)))
    (call $put_raw (local.get $p) (local.get $n)))

  ;; A NUL-terminated static message, without its NUL.
  (func $put_cstr (param $p i32)
    (call $put_raw (local.get $p) (call $strlen (local.get $p))))

  ;; An unsigned number in decimal.
  (func $put_dec (param $v i32)
    (if (i32.ge_u (local.get $v) (i32.const 10))
      (then (call $put_dec (i32.div_u (local.get $v) (i32.const 10)))))
    (call $put_u8 (i32.add (i32.const 0x30) (i32.rem_u (local.get $v) (i32.const 10)))))

  (func $strlen (param $p i32) (result i32)
    (local $i i32)
    (block $end
      (loop $scan
        (br_if $end (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $scan)))
    (local.get $i))

  ;; ---------------------------------------------------------------------
  ;; Reader
  ;; ---------------------------------------------------------------------

  ;; Read [$p, +$n) from the start, clearing $bad.
  (func $read_from (param $p i32) (param $n i32)
    (global.set $rd (local.get $p))
    (global.set $rd_end (i32.add (local.get $p) (local.get $n)))
    (global.set $bad (i32.const 0)))

  ;; 1 when the input was read to its end without error. Every decoder
  ;; checks this: trailing bytes are as malformed as missing ones.
  (func $done (result i32)
    (i32.and (i32.eqz (global.get $bad))
             (i32.eq (global.get $rd) (global.get $rd_end))))

  (func $get_u8 (result i32)
    (local $b i32)
    (if (i32.ge_u (global.get $rd) (global.get $rd_end))
      (then
        (global.set $bad (i32.const 1))
        (return (i32.const 0))))
    (local.set $b (i32.load8_u (global.get $rd)))
    (global.set $rd (i32.add (global.get $rd) (i32.const 1)))
    (local.get $b))

  ;; Unsigned LEB128 of at most 10 bytes; the 10th may only be 0 or 1, as
  ;; in Go's binary.Uvarint, so the value fits in 64 bits.
  (func $get_uvarint (result i64)
    (local $v i64) (local $shift i64) (local $b i32) (local $i i32)
    (loop $next
      (local.set $b (call $get_u8))
      (if (global.get $bad)
        (then (return (i64.const 0))))
      (if (i32.and (i32.eq (local.get $i) (i32.const 9))
                   (i32.gt_u (local.get $b) (i32.const 1)))
        (then
          (global.set $bad (i32.const 1))
          (return (i64.const 0))))
      (local.set $v (i64.or (local.get $v)
        (i64.shl (i64.extend_i32_u (i32.and (local.get $b) (i32.const 0x7f)))
                 (local.get $shift))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (local.set $shift (i64.add (local.get $shift) (i64.const 7)))
      (br_if $next (i32.and (local.get $b) (i32.const 0x80))))
    (local.get $v))

  ;; Zig-zag varint, the inverse of $put_varint.
  (func $get_varint (result i64)
    (local $u i64)
    (local.set $u (call $get_uvarint))
    (i64.xor (i64.shr_u (local.get $u) (i64.const 1))
             (i64.sub (i64.const 0) (i64.and (local.get $u) (i64.const 1)))))

  ;; A bytes (or string) field: sets $f_ptr and $f_len to the bytes in the
  ;; input, without copying.
  (func $get_field
    (local $n i64)
    (local.set $n (call $get_uvarint))
    (global.set $f_ptr (global.get $rd))
    (global.set $f_len (i32.const 0))
    (if (global.get $bad)
      (then (return)))
    (if (i64.gt_u (local.get $n)
                  (i64.extend_i32_u (i32.sub (global.get $rd_end) (global.get $rd))))
      (then
        (global.set $bad (i32.const 1))
        (return)))
    (global.set $f_len (i32.wrap_i64 (local.get $n)))
    (global.set $rd (i32.add (global.get $rd) (global.get $f_len))))
)
