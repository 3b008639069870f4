;; Build: wat2wasm cursorwalk.wat -o cursorwalk.wasm   (or ../build.sh for every fixture)
;;
;; cursorwalk: a metrics backend whose query never ends, without ever
;; repeating a cursor. Every page holds the same one metric and a next
;; cursor never given before (a 64-bit counter), so a client that follows
;; next reads the same record for ever. host/backup's tests check that a
;; backup stops at its bounds of size and time.
(module
  (memory (export "memory") 1)

  ;; Metadata, 21 bytes: abi 1.0, name "cursorwalk", version "1.0.0",
  ;; features 9 (metrics, query), no capabilities.
  (data (i32.const 0x000) "\01\00" "\0acursorwalk" "\051.0.0" "\09" "\00")
  ;; OK with an empty body.
  (data (i32.const 0x040) "\00")
  ;; Unsupported, 15 bytes.
  (data (i32.const 0x080) "\05" "unsupported op")
  ;; A page, 39 bytes: OK, one record, the Metric {agent_id "walk", name
  ;; "cpu", value 1, timestamp 2023-11-14T22:13:20Z} (28 bytes), next: 8
  ;; bytes, the counter, set per call.
  (data (i32.const 0x100) "\00" "\01"
    "\04walk" "\03cpu" "\00\00\00\00\00\00\f0\3f" "\80\80\d0\e2\c6\bf\ce\97\2f" "\00" "\00"
    "\08" "\00\00\00\00\00\00\00\00")

  (global $n (mut i64) (i64.const 0))

  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32))
            (i64.extend_i32_u (local.get $len))))

  (func (export "storage_abi_version") (result i32)
    (i32.const 0x00010000))

  (func (export "storage_metadata") (result i64)
    (call $pack (i32.const 0) (i32.const 21)))

  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 0x8000))
      (then unreachable))
    (i32.const 0x1000))

  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    ;; OpPing (1), OpConfigure (2)
    (if (i32.or (i32.eq (local.get $op) (i32.const 1)) (i32.eq (local.get $op) (i32.const 2)))
      (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    ;; OpQueryMetrics (13)
    (if (i32.eq (local.get $op) (i32.const 13))
      (then
        (global.set $n (i64.add (global.get $n) (i64.const 1)))
        (i64.store (i32.const 0x11f) (global.get $n))
        (return (call $pack (i32.const 0x100) (i32.const 39)))))
    (call $pack (i32.const 0x080) (i32.const 15)))
)
