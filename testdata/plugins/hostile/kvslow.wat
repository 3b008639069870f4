;; Build: wat2wasm kvslow.wat -o kvslow.wasm
;;
;; kvslow: a hostile plugin whose kv calls are each cheap to ask for and
;; costly to serve, made in a tight loop: only the host's check of the
;; call's deadline at every host call stops it in time (the fuel checks
;; come once every ~10 000 loop iterations).
;;
;; storage_call(get agent state), by the first byte of the agent ID:
;;   'e'  10 000 puts of empty values under new 4-byte keys (each call goes
;;        on from the last one's), each expiring 2 s from the host clock's
;;        now; a call of its own per 10 000 keeps each well within the
;;        call timeout on a loaded machine
;;   'S'  scans of limit 1 from the empty key, for ever (every one meets
;;        the expired entries the sweeper has not reclaimed yet)
;;   'p'  one put of a 16 MiB value under "big"
;;   'P'  puts of the 16 MiB value under "big", for ever (each replaces
;;        the last: the quota holds one value)
;;   'g'  gets of "big" with out_cap 0, for ever (the host encodes
;;        16 MiB per call, and keeps it for storagehost_kv.result)
;; then answers OK with the AgentState {agent_id: the one asked for,
;; state: status of the last kv call (u32 LE), count (u32 LE)}.
(module
  (import "storagehost_kv" "call"
    (func $kv_call (param i32 i32 i32 i32) (result i32)))
  (import "storagehost_clock" "now" (func $now (result i64)))

  (memory (export "memory") 300)

  ;; Metadata: abi 1.0, name "kvslow", version "1.0.0", features 4
  ;; (agent_states), capabilities [kv, clock]. 26 bytes.
  (data (i32.const 0x000) "\01\00" "\06kvslow" "\051.0.0" "\04" "\02" "\02kv" "\05clock")
  (data (i32.const 0x040) "\00")
  (data (i32.const 0x080) "\00" "\01x" "\08" "\00\00\00\00\00\00\00\00" "\00" "\00" "\00")
  (data (i32.const 0x0a0) "\05" "unsupported op")
  ;; put of an empty value with expiry: op 2, key len 4, key (at +2),
  ;; value "", expires_at 10-byte LEB128 (at +7), keep_ttl 0, cond 0: 19 bytes.
  (data (i32.const 0x4000) "\02" "\04\00\00\00\00" "\00" "\00\00\00\00\00\00\00\00\00\00" "\00" "\00")
  ;; scan: op 4, start "", end "", limit 1: 4 bytes
  (data (i32.const 0x4100) "\04" "\00" "\00" "\01")
  ;; get "big": 5 bytes
  (data (i32.const 0x4200) "\01" "\03big")
  ;; put "big" of 16 MiB: op 2, key "big", len 0x1000000 (80 80 80 08),
  ;; value at 0x100009, then expires 0, keep_ttl 0, cond 0 at 0x1100009.
  (data (i32.const 0x100000) "\02" "\03big" "\80\80\80\08")

  (global $REQ_BASE i32 (i32.const 0x1000))
  (global $OUT i32 (i32.const 0x100))
  (global $next (mut i32) (i32.const 0))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  ;; writes v as a 10-byte zig-zag LEB128 varint at p
  (func $varint10 (param $p i32) (param $v i64)
    (local $z i64) (local $i i32)
    (local.set $z (i64.xor (i64.shl (local.get $v) (i64.const 1))
                           (i64.shr_s (local.get $v) (i64.const 63))))
    (block $d (loop $l
      (br_if $d (i32.ge_u (local.get $i) (i32.const 9)))
      (i32.store8 (i32.add (local.get $p) (local.get $i))
        (i32.or (i32.wrap_i64 (i64.and (local.get $z) (i64.const 0x7f))) (i32.const 0x80)))
      (local.set $z (i64.shr_u (local.get $z) (i64.const 7)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (i32.store8 (i32.add (local.get $p) (i32.const 9)) (i32.wrap_i64 (local.get $z))))

  (func $expiring
    (local $i i32) (local $st i32)
    (call $varint10 (i32.const 0x4007) (i64.add (call $now) (i64.const 2000000000)))
    (block $done (loop $more
      (br_if $done (i32.ge_u (local.get $i) (i32.const 10000)))
      (i32.store (i32.const 0x4002) (global.get $next))
      (drop (call $kv_call (i32.const 0x4000) (i32.const 19) (global.get $OUT) (i32.const 256)))
      (local.set $st (i32.load8_u (global.get $OUT)))
      (br_if $done (local.get $st))
      (global.set $next (i32.add (global.get $next) (i32.const 1)))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $more)))
    (i32.store (i32.const 0x084) (local.get $st))
    (i32.store (i32.const 0x088) (local.get $i)))

  (func $scans
    (loop $l
      (drop (call $kv_call (i32.const 0x4100) (i32.const 4) (global.get $OUT) (i32.const 256)))
      (br $l)))

  (func $putbig
    (drop (call $kv_call (i32.const 0x100000) (i32.const 0x100000c) (global.get $OUT) (i32.const 256)))
    (i32.store (i32.const 0x084) (i32.load8_u (global.get $OUT))))

  (func $putsbig
    (loop $l
      (drop (call $kv_call (i32.const 0x100000) (i32.const 0x100000c) (global.get $OUT) (i32.const 256)))
      (br $l)))

  (func $gets
    (loop $l
      (drop (call $kv_call (i32.const 0x4200) (i32.const 5) (global.get $OUT) (i32.const 0)))
      (br $l)))

  (func (export "storage_abi_version") (result i32) (i32.const 0x00010000))
  (func (export "storage_metadata") (result i64) (call $pack (i32.const 0) (i32.const 26)))
  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 0x3000)) (then unreachable))
    (global.get $REQ_BASE))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (local $sel i32)
    (if (i32.le_u (local.get $op) (i32.const 2))
      (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    (if (i32.ne (local.get $op) (i32.const 31))
      (then (return (call $pack (i32.const 0x0a0) (i32.const 15)))))
    (local.set $sel (i32.load8_u (i32.add (global.get $REQ_BASE) (i32.const 1))))
    (if (i32.eq (local.get $sel) (i32.const 0x65)) (then (call $expiring)))
    (if (i32.eq (local.get $sel) (i32.const 0x53)) (then (call $scans)))
    (if (i32.eq (local.get $sel) (i32.const 0x70)) (then (call $putbig)))
    (if (i32.eq (local.get $sel) (i32.const 0x67)) (then (call $gets)))
    (if (i32.eq (local.get $sel) (i32.const 0x50)) (then (call $putsbig)))
    (i32.store8 (i32.const 0x082) (local.get $sel))
    (call $pack (i32.const 0x080) (i32.const 15)))
)
