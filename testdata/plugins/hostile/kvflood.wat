;; Build: wat2wasm kvflood.wat -o kvflood.wasm   (or ../build.sh for every fixture)
;;
;; kvflood: a hostile plugin that fills the backend's kv store and reads it
;; back in one scan: values of 64 KiB until the store refuses, a million
;; empty values until it refuses, and a scan of 1000 entries. The host
;; holds at most the backend's kv quota (Limits.MaxKVBytes, MaxKVEntries)
;; and answers past it with LIMIT; a scan's response is cut at
;; Limits.MaxKVScanBytes while it is built.
;;
;; Features: agent_states; capabilities: kv.
;; storage_call(get agent state), by the first byte of the agent ID:
;;   'f'  up to 2000 puts of 64 KiB values under new keys, stopping at the
;;        first that is not OK
;;   'n'  the same with up to 1 000 000 puts of empty values
;;   'S'  a scan of the whole store, limit 1000, fetched with
;;        storagehost_kv.result when it fits in 2.3 MiB
;; then answers OK with the AgentState {agent_id: the one asked for, state: the status
;; of the last kv call (u32 LE; 255 for a put whose answer did not fit in
;; 256 bytes) then the count of puts that were OK, or the scan response's
;; length (u32 LE)}.
;; Ping and configure are OK; any other op is unsupported.
(module
  (import "storagehost_kv" "call"
    (func $kv_call (param $req_ptr i32) (param $req_len i32)
                   (param $out_ptr i32) (param $out_cap i32) (result i32)))
  (import "storagehost_kv" "result"
    (func $kv_result (param $out_ptr i32) (param $out_cap i32) (result i32)))

  (memory (export "memory") 40)

  ;; Metadata, 21 bytes: abi 1.0, name "kvflood", version "1.0.0",
  ;; features 4 (agent_states), capabilities [kv].
  (data (i32.const 0x000) "\01\00" "\07kvflood" "\051.0.0" "\04" "\01" "\02kv")
  ;; OK with an empty body.
  (data (i32.const 0x040) "\00")
  ;; OK with the AgentState {agent_id "x", state of 8 bytes (filled in at
  ;; 0x084), version 0, times unset}, 15 bytes.
  (data (i32.const 0x080) "\00" "\01x" "\08" "\00\00\00\00\00\00\00\00" "\00" "\00" "\00")
  ;; Unsupported, 15 bytes.
  (data (i32.const 0x0a0) "\05" "unsupported op")
  ;; A put of an empty value, 10 bytes: op 2, key of 4 bytes (set at +2),
  ;; value "", expires_at 0, keep_ttl false, unconditional.
  (data (i32.const 0x4000) "\02" "\04\00\00\00\00" "\00" "\00" "\00" "\00")
  ;; A scan, 5 bytes: op 4, start "", end "", limit 1000.
  (data (i32.const 0x4100) "\04" "\00" "\00" "\e8\07")
  ;; A put of a 64 KiB value of zeros, 65 548 bytes: op 2, key of 4 bytes
  ;; (set at +2), value length 65 536 (3-byte uvarint), the value, then
  ;; expires_at 0, keep_ttl false, unconditional at 0x20009.
  (data (i32.const 0x10000) "\02" "\04\00\00\00\00" "\80\80\04")

  (global $REQ_BASE i32 (i32.const 0x1000))
  ;; Where kv answers go, 256 bytes.
  (global $OUT i32 (i32.const 0x100))
  ;; Where a scan's answer is fetched, to the end of memory.
  (global $RESULT i32 (i32.const 0x30000))
  (global $RESULT_CAP i32 (i32.const 0x250000))
  ;; The next key: keys are new across calls of one instance.
  (global $next (mut i32) (i32.const 0))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  ;; Up to $max puts of the request at $req, each under the next key, until
  ;; one is not OK; the status and count go to the answer's state.
  (func $puts (param $req i32) (param $len i32) (param $max i32)
    (local $i i32) (local $st i32)
    (block $done
      (loop $more
        (br_if $done (i32.ge_u (local.get $i) (local.get $max)))
        (i32.store (i32.add (local.get $req) (i32.const 2)) (global.get $next))
        (if (i32.gt_u (call $kv_call (local.get $req) (local.get $len) (global.get $OUT) (i32.const 256))
                      (i32.const 256))
          (then (local.set $st (i32.const 255)))
          (else (local.set $st (i32.load8_u (global.get $OUT)))))
        (br_if $done (local.get $st))
        (global.set $next (i32.add (global.get $next) (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $more)))
    (i32.store (i32.const 0x084) (local.get $st))
    (i32.store (i32.const 0x088) (local.get $i)))

  ;; One scan, its answer left pending (capacity 0), then fetched when it
  ;; fits.
  (func $scan
    (local $n i32)
    (local.set $n (call $kv_call (i32.const 0x4100) (i32.const 5) (global.get $OUT) (i32.const 0)))
    (i32.store (i32.const 0x084) (i32.const 255))
    (if (i32.le_u (local.get $n) (global.get $RESULT_CAP))
      (then
        (drop (call $kv_result (global.get $RESULT) (global.get $RESULT_CAP)))
        (i32.store (i32.const 0x084) (i32.load8_u (global.get $RESULT)))))
    (i32.store (i32.const 0x088) (local.get $n)))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 21)))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 0x3000))
      (then unreachable))
    (global.get $REQ_BASE))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (local $sel i32)
    ;; OpPing (1), OpConfigure (2)
    (if (i32.le_u (local.get $op) (i32.const 2))
      (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    (if (i32.ne (local.get $op) (i32.const 31)) ;; OpGetAgentState
      (then (return (call $pack (i32.const 0x0a0) (i32.const 15)))))
    ;; The request is the agent ID, a string.
    (local.set $sel (i32.load8_u (i32.add (global.get $REQ_BASE) (i32.const 1))))
    (if (i32.eq (local.get $sel) (i32.const 0x66)) ;; 'f'
      (then (call $puts (i32.const 0x10000) (i32.const 65548) (i32.const 2000))))
    (if (i32.eq (local.get $sel) (i32.const 0x6e)) ;; 'n'
      (then (call $puts (i32.const 0x4000) (i32.const 10) (i32.const 1000000))))
    (if (i32.eq (local.get $sel) (i32.const 0x53)) ;; 'S'
      (then (call $scan)))
    ;; The answer is the state of the agent asked for: its one-byte ID.
    (i32.store8 (i32.const 0x082) (local.get $sel))
    (call $pack (i32.const 0x080) (i32.const 15)))
)
