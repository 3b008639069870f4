;; Build: wat2wasm writegarbage.wat -o writegarbage.wasm   (or ../build.sh for every fixture)
;;
;; writegarbage: an agent-state plugin whose put writes the record to the
;; kv store and then answers OK with a body cut short (no expires_at).
;; The host cannot read the answer, but the write was made: the caller
;; must be told its outcome is unknown (host/security_more_test.go,
;; TestMalformedAnswerAfterAWrite), not that it failed.
;;
;; watstates: a minimal agent-state backend in raw WAT, written against
;; abi/README.md only. Features: agent_states (0x04). Capabilities: clock, kv.
;; Records: kv key = agent id, value = updated_at (8 bytes LE) ++ state.
(module
  (import "storagehost_clock" "now" (func $now (result i64)))
  (import "storagehost_kv" "call" (func $kv_call (param i32 i32 i32 i32) (result i32)))
  (import "storagehost_kv" "result" (func $kv_result (param i32 i32) (result i32)))

  (memory (export "memory") 2)

  ;; Metadata at 0: abi 1.6, "watstates", "0.1.0", features 0x04, caps [clock, kv]
  (data (i32.const 0) "\01\06\09watstates\050.1.0\04\02\05clock\02kv")
  ;; messages at 256
  (data (i32.const 256) "\05op not supported")          ;; 17 bytes
  (data (i32.const 288) "\03malformed request")         ;; 18 bytes
  (data (i32.const 320) "\03invalid agent id")          ;; 17 bytes
  (data (i32.const 352) "\05ttl/condition not supported") ;; 28 bytes
  (data (i32.const 384) "\01agent state not found")     ;; 22 bytes
  (data (i32.const 416) "\00")                          ;; OK, empty
  (data (i32.const 448) "\03unknown option")            ;; 15 bytes

  (global $reqcap (mut i32) (i32.const 0))
  (global $heapbase (mut i32) (i32.const 0x20000))
  (global $heap (mut i32) (i32.const 0x20000))
  (global $pos (mut i32) (i32.const 0))
  (global $end (mut i32) (i32.const 0))
  (global $err (mut i32) (i32.const 0))
  (global $wp (mut i32) (i32.const 0))

  (func (export "storage_abi_version") (result i32) (i32.const 0x00010006))
  (func (export "storage_metadata") (result i64) (i64.const 29))

  (func $ensure (param $top i32)
    (local $need i32)
    (local.set $need
      (i32.sub (i32.shr_u (i32.add (local.get $top) (i32.const 0xffff)) (i32.const 16))
               (memory.size)))
    (if (i32.gt_s (local.get $need) (i32.const 0))
      (then (if (i32.eq (memory.grow (local.get $need)) (i32.const -1)) (then unreachable)))))

  ;; requests at 0x10000 (page 1); heap after them
  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 0xE000_0000)) (then unreachable))
    (if (i32.gt_u (local.get $size) (global.get $reqcap))
      (then
        (global.set $reqcap (local.get $size))
        (global.set $heapbase
          (i32.and (i32.add (i32.add (i32.const 0x10000) (local.get $size)) (i32.const 15)) (i32.const -16)))
        (if (i32.lt_u (global.get $heapbase) (i32.const 0x20000)) (then (global.set $heapbase (i32.const 0x20000))))))
    (call $ensure (i32.add (i32.const 0x10000) (local.get $size)))
    (i32.const 0x10000))

  (func $alloc (param $n i32) (result i32)
    (local $p i32)
    (local.set $p (global.get $heap))
    (global.set $heap (i32.add (local.get $p) (local.get $n)))
    (call $ensure (global.get $heap))
    (local.get $p))

  ;; ---- reading ----
  (func $rd_u8 (result i32)
    (local $v i32)
    (if (i32.ge_u (global.get $pos) (global.get $end))
      (then (global.set $err (i32.const 1)) (return (i32.const 0))))
    (local.set $v (i32.load8_u (global.get $pos)))
    (global.set $pos (i32.add (global.get $pos) (i32.const 1)))
    (local.get $v))

  (func $rd_uvarint (result i64)
    (local $r i64) (local $shift i64) (local $b i32) (local $i i32)
    (block $done
      (loop $next
        (local.set $b (call $rd_u8))
        (if (global.get $err) (then (return (i64.const 0))))
        ;; 10th byte may carry only the top bit
        (if (i32.and (i32.eq (local.get $i) (i32.const 9)) (i32.gt_u (local.get $b) (i32.const 1)))
          (then (global.set $err (i32.const 1)) (return (i64.const 0))))
        (local.set $r (i64.or (local.get $r)
          (i64.shl (i64.extend_i32_u (i32.and (local.get $b) (i32.const 0x7f))) (local.get $shift))))
        (br_if $done (i32.eqz (i32.and (local.get $b) (i32.const 0x80))))
        (local.set $shift (i64.add (local.get $shift) (i64.const 7)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (local.get $r))

  ;; bytes: returns ptr, len
  (func $rd_bytes (result i32 i32)
    (local $n i64) (local $p i32)
    (local.set $n (call $rd_uvarint))
    (if (global.get $err) (then (return (i32.const 0) (i32.const 0))))
    (if (i64.gt_u (local.get $n) (i64.extend_i32_u (i32.sub (global.get $end) (global.get $pos))))
      (then (global.set $err (i32.const 1)) (return (i32.const 0) (i32.const 0))))
    (local.set $p (global.get $pos))
    (global.set $pos (i32.add (global.get $pos) (i32.wrap_i64 (local.get $n))))
    (local.get $p) (i32.wrap_i64 (local.get $n)))

  ;; ---- writing at $wp ----
  (func $w_u8 (param $v i32)
    (i32.store8 (global.get $wp) (local.get $v))
    (global.set $wp (i32.add (global.get $wp) (i32.const 1))))
  (func $w_uvarint (param $v i64)
    (loop $next
      (if (i64.lt_u (local.get $v) (i64.const 0x80))
        (then (call $w_u8 (i32.wrap_i64 (local.get $v))) (return)))
      (call $w_u8 (i32.or (i32.and (i32.wrap_i64 (local.get $v)) (i32.const 0x7f)) (i32.const 0x80)))
      (local.set $v (i64.shr_u (local.get $v) (i64.const 7)))
      (br $next)))
  (func $w_varint (param $v i64)
    (call $w_uvarint (i64.xor (i64.shl (local.get $v) (i64.const 1)) (i64.shr_s (local.get $v) (i64.const 63)))))
  (func $w_bytes (param $p i32) (param $n i32)
    (call $w_uvarint (i64.extend_i32_u (local.get $n)))
    (memory.copy (global.get $wp) (local.get $p) (local.get $n))
    (global.set $wp (i32.add (global.get $wp) (local.get $n))))

  (func $pack (param $p i32) (param $n i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $p)) (i64.const 32)) (i64.extend_i32_u (local.get $n))))

  ;; an ID: 1..512 bytes, no NUL
  (func $valid_id (param $p i32) (param $n i32) (result i32)
    (local $i i32)
    (if (i32.or (i32.eqz (local.get $n)) (i32.gt_u (local.get $n) (i32.const 512))) (then (return (i32.const 0))))
    (block $out (loop $l
      (br_if $out (i32.ge_u (local.get $i) (local.get $n)))
      (if (i32.eqz (i32.load8_u (i32.add (local.get $p) (local.get $i)))) (then (return (i32.const 0))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (br $l)))
    (call $utf8 (local.get $p) (local.get $n)))

  ;; byte at p+i in [lo, hi]
  (func $in (param $p i32) (param $n i32) (param $i i32) (param $lo i32) (param $hi i32) (result i32)
    (local $b i32)
    (if (i32.ge_u (local.get $i) (local.get $n)) (then (return (i32.const 0))))
    (local.set $b (i32.load8_u (i32.add (local.get $p) (local.get $i))))
    (i32.and (i32.ge_u (local.get $b) (local.get $lo)) (i32.le_u (local.get $b) (local.get $hi))))

  (func $utf8 (param $p i32) (param $n i32) (result i32)
    (local $i i32) (local $b i32) (local $k i32) (local $lo i32) (local $hi i32)
    (block $out (loop $l
      (br_if $out (i32.ge_u (local.get $i) (local.get $n)))
      (local.set $b (i32.load8_u (i32.add (local.get $p) (local.get $i))))
      (local.set $lo (i32.const 0x80)) (local.set $hi (i32.const 0xbf))
      (if (i32.lt_u (local.get $b) (i32.const 0x80))
        (then (local.set $k (i32.const 0)))
      (else (if (i32.and (i32.ge_u (local.get $b) (i32.const 0xc2)) (i32.le_u (local.get $b) (i32.const 0xdf)))
        (then (local.set $k (i32.const 1)))
      (else (if (i32.and (i32.ge_u (local.get $b) (i32.const 0xe0)) (i32.le_u (local.get $b) (i32.const 0xef)))
        (then (local.set $k (i32.const 2))
          (if (i32.eq (local.get $b) (i32.const 0xe0)) (then (local.set $lo (i32.const 0xa0))))
          (if (i32.eq (local.get $b) (i32.const 0xed)) (then (local.set $hi (i32.const 0x9f)))))
      (else (if (i32.and (i32.ge_u (local.get $b) (i32.const 0xf0)) (i32.le_u (local.get $b) (i32.const 0xf4)))
        (then (local.set $k (i32.const 3))
          (if (i32.eq (local.get $b) (i32.const 0xf0)) (then (local.set $lo (i32.const 0x90))))
          (if (i32.eq (local.get $b) (i32.const 0xf4)) (then (local.set $hi (i32.const 0x8f)))))
      (else (return (i32.const 0))))))))))
      (local.set $i (i32.add (local.get $i) (i32.const 1)))
      (if (local.get $k)
        (then
          (if (i32.eqz (call $in (local.get $p) (local.get $n) (local.get $i) (local.get $lo) (local.get $hi)))
            (then (return (i32.const 0))))
          (local.set $i (i32.add (local.get $i) (i32.const 1)))
          (local.set $k (i32.sub (local.get $k) (i32.const 1)))
          (block $cdone (loop $c
            (br_if $cdone (i32.eqz (local.get $k)))
            (if (i32.eqz (call $in (local.get $p) (local.get $n) (local.get $i) (i32.const 0x80) (i32.const 0xbf)))
              (then (return (i32.const 0))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (local.set $k (i32.sub (local.get $k) (i32.const 1)))
            (br $c)))))
      (br $l)))
    (i32.const 1))

  ;; kv call into a fresh buffer of cap; returns ptr, len of the response
  (func $kv (param $req i32) (param $rlen i32) (param $cap i32) (result i32 i32)
    (local $out i32) (local $n i32)
    (local.set $out (call $alloc (local.get $cap)))
    (local.set $n (call $kv_call (local.get $req) (local.get $rlen) (local.get $out) (local.get $cap)))
    (if (i32.gt_u (local.get $n) (local.get $cap))
      (then
        (local.set $out (call $alloc (local.get $n)))
        (local.set $n (call $kv_result (local.get $out) (local.get $n)))))
    (local.get $out) (local.get $n))

  (func $put (param $len i32) (result i64)
    (local $idp i32) (local $idn i32) (local $sp i32) (local $sn i32)
    (local $ttl i32) (local $cond i32) (local $t i64)
    (local $req i32) (local $rp i32) (local $rn i32) (local $rev i64) (local $resp i32)
    (call $rd_bytes) (local.set $idn) (local.set $idp)
    (call $rd_bytes) (local.set $sn) (local.set $sp)
    (drop (call $rd_uvarint)) (drop (call $rd_uvarint)) (drop (call $rd_uvarint))
    (local.set $ttl (call $rd_u8))
    (if (i32.eq (local.get $ttl) (i32.const 1)) (then (drop (call $rd_uvarint))))
    (local.set $cond (call $rd_u8))
    (if (i32.eq (local.get $cond) (i32.const 1)) (then (drop (call $rd_uvarint))))
    (if (i32.or (global.get $err) (i32.or (i32.ne (global.get $pos) (global.get $end)) (i32.gt_u (local.get $cond) (i32.const 2))))
      (then (return (call $pack (i32.const 288) (i32.const 18)))))
    (if (i32.eqz (call $valid_id (local.get $idp) (local.get $idn)))
      (then (return (call $pack (i32.const 320) (i32.const 17)))))
    (if (i32.or (local.get $ttl) (local.get $cond))
      (then (return (call $pack (i32.const 352) (i32.const 28)))))
    (local.set $t (call $now))
    ;; kv put: 02 key value(8+state) expires 00 keep 00 cond 00
    (local.set $req (call $alloc (i32.add (i32.add (local.get $idn) (local.get $sn)) (i32.const 40))))
    (global.set $wp (local.get $req))
    (call $w_u8 (i32.const 2))
    (call $w_bytes (local.get $idp) (local.get $idn))
    (call $w_uvarint (i64.extend_i32_u (i32.add (local.get $sn) (i32.const 8))))
    (i64.store (global.get $wp) (local.get $t))
    (global.set $wp (i32.add (global.get $wp) (i32.const 8)))
    (memory.copy (global.get $wp) (local.get $sp) (local.get $sn))
    (global.set $wp (i32.add (global.get $wp) (local.get $sn)))
    (call $w_u8 (i32.const 0)) (call $w_u8 (i32.const 0)) (call $w_u8 (i32.const 0))
    (call $kv (local.get $req) (i32.sub (global.get $wp) (local.get $req)) (i32.const 256))
    (local.set $rn) (local.set $rp)
    (if (i32.eqz (local.get $rn)) (then unreachable))
    (if (i32.load8_u (local.get $rp)) (then (return (call $pack (local.get $rp) (local.get $rn)))))
    (global.set $pos (i32.add (local.get $rp) (i32.const 1)))
    (global.set $end (i32.add (local.get $rp) (local.get $rn)))
    (local.set $rev (call $rd_uvarint))
    ;; response: 00 id state rev updated expires
    (local.set $resp (call $alloc (i32.add (i32.add (local.get $idn) (local.get $sn)) (i32.const 40))))
    (global.set $wp (local.get $resp))
    (call $w_u8 (i32.const 0))
    (call $w_bytes (local.get $idp) (local.get $idn))
    (call $w_bytes (local.get $sp) (local.get $sn))
    (call $w_uvarint (local.get $rev))
    (call $w_varint (local.get $t))
    (call $pack (local.get $resp) (i32.sub (global.get $wp) (local.get $resp))))

  (func $get (param $len i32) (result i64)
    (local $idp i32) (local $idn i32) (local $req i32) (local $rp i32) (local $rn i32)
    (local $rev i64) (local $vp i32) (local $vn i32) (local $resp i32)
    (call $rd_bytes) (local.set $idn) (local.set $idp)
    (if (i32.or (global.get $err) (i32.ne (global.get $pos) (global.get $end)))
      (then (return (call $pack (i32.const 288) (i32.const 18)))))
    (if (i32.eqz (call $valid_id (local.get $idp) (local.get $idn)))
      (then (return (call $pack (i32.const 320) (i32.const 17)))))
    (local.set $req (call $alloc (i32.add (local.get $idn) (i32.const 16))))
    (global.set $wp (local.get $req))
    (call $w_u8 (i32.const 1))
    (call $w_bytes (local.get $idp) (local.get $idn))
    (call $kv (local.get $req) (i32.sub (global.get $wp) (local.get $req)) (i32.const 4096))
    (local.set $rn) (local.set $rp)
    (if (i32.eqz (local.get $rn)) (then unreachable))
    (if (i32.eq (i32.load8_u (local.get $rp)) (i32.const 1)) (then (return (call $pack (i32.const 384) (i32.const 22)))))
    (if (i32.load8_u (local.get $rp)) (then (return (call $pack (local.get $rp) (local.get $rn)))))
    (global.set $pos (i32.add (local.get $rp) (i32.const 1)))
    (global.set $end (i32.add (local.get $rp) (local.get $rn)))
    (local.set $rev (call $rd_uvarint))
    (drop (call $rd_uvarint))
    (call $rd_bytes) (local.set $vn) (local.set $vp)
    (if (i32.or (global.get $err) (i32.lt_u (local.get $vn) (i32.const 8))) (then unreachable))
    (local.set $resp (call $alloc (i32.add (i32.add (local.get $idn) (local.get $vn)) (i32.const 40))))
    (global.set $wp (local.get $resp))
    (call $w_u8 (i32.const 0))
    (call $w_bytes (local.get $idp) (local.get $idn))
    (call $w_bytes (i32.add (local.get $vp) (i32.const 8)) (i32.sub (local.get $vn) (i32.const 8)))
    (call $w_uvarint (local.get $rev))
    (call $w_varint (i64.load (local.get $vp)))
    (call $w_u8 (i32.const 0))
    (call $pack (local.get $resp) (i32.sub (global.get $wp) (local.get $resp))))

  (func $delete (param $len i32) (result i64)
    (local $idp i32) (local $idn i32) (local $cond i32) (local $req i32) (local $rp i32) (local $rn i32)
    (call $rd_bytes) (local.set $idn) (local.set $idp)
    (local.set $cond (call $rd_u8))
    (if (i32.eq (local.get $cond) (i32.const 1)) (then (drop (call $rd_uvarint))))
    (if (i32.or (global.get $err) (i32.or (i32.ne (global.get $pos) (global.get $end)) (i32.gt_u (local.get $cond) (i32.const 2))))
      (then (return (call $pack (i32.const 288) (i32.const 18)))))
    (if (i32.eqz (call $valid_id (local.get $idp) (local.get $idn)))
      (then (return (call $pack (i32.const 320) (i32.const 17)))))
    (if (local.get $cond) (then (return (call $pack (i32.const 352) (i32.const 28)))))
    (local.set $req (call $alloc (i32.add (local.get $idn) (i32.const 16))))
    (global.set $wp (local.get $req))
    (call $w_u8 (i32.const 3))
    (call $w_bytes (local.get $idp) (local.get $idn))
    (call $w_u8 (i32.const 0))
    (call $kv (local.get $req) (i32.sub (global.get $wp) (local.get $req)) (i32.const 256))
    (local.set $rn) (local.set $rp)
    (if (i32.eqz (local.get $rn)) (then unreachable))
    (if (i32.eq (i32.load8_u (local.get $rp)) (i32.const 1)) (then (return (call $pack (i32.const 384) (i32.const 22)))))
    (call $pack (local.get $rp) (local.get $rn)))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (global.set $heap (global.get $heapbase))
    (global.set $pos (i32.const 0x10000))
    (global.set $end (i32.add (i32.const 0x10000) (local.get $len)))
    (global.set $err (i32.const 0))
    (if (i32.eq (local.get $op) (i32.const 1)) (then (return (call $pack (i32.const 416) (i32.const 1)))))
    (if (i32.eq (local.get $op) (i32.const 2))
      (then
        ;; options: we take none; the empty map is the single byte 00
        (if (i32.and (i32.eq (local.get $len) (i32.const 1)) (i32.eqz (i32.load8_u (i32.const 0x10000))))
          (then (return (call $pack (i32.const 416) (i32.const 1)))))
        (return (call $pack (i32.const 448) (i32.const 15)))))
    (if (i32.eq (local.get $op) (i32.const 30)) (then (return (call $put (local.get $len)))))
    (if (i32.eq (local.get $op) (i32.const 31)) (then (return (call $get (local.get $len)))))
    (if (i32.eq (local.get $op) (i32.const 32)) (then (return (call $delete (local.get $len)))))
    (call $pack (i32.const 256) (i32.const 17)))
)
