;; Build: wat2wasm cursorloop.wat -o cursorloop.wasm   (or ../build.sh for every fixture)
;;
;; cursorloop: a metrics backend whose query never ends. Every page is
;; empty, and its next cursor cycles through "c0", "c1", "c2", "c0", ...
;; whatever cursor the host sent, so a client that follows next without
;; remembering where it has been reads for ever. host/backup's
;; TestBackupCursorLoop checks that a backup stops at the first repeat.
(module
  (memory (export "memory") 1)

  ;; Metadata, 21 bytes: abi 1.0, name "cursorloop", version "1.0.0",
  ;; features 9 (metrics, query), no capabilities.
  (data (i32.const 0x000) "\01\00" "\0acursorloop" "\051.0.0" "\09" "\00")
  ;; OK with an empty body.
  (data (i32.const 0x040) "\00")
  ;; Unsupported, 15 bytes.
  (data (i32.const 0x080) "\05" "unsupported op")
  ;; A page, 5 bytes: OK, no records, next "c?" (the digit set per call).
  (data (i32.const 0x100) "\00" "\00" "\02c0")

  (global $n (mut i32) (i32.const 0))

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
        (i32.store8 (i32.const 0x104)
          (i32.add (i32.const 0x30) (i32.rem_u (global.get $n) (i32.const 3))))
        (global.set $n (i32.add (global.get $n) (i32.const 1)))
        (return (call $pack (i32.const 0x100) (i32.const 5)))))
    (call $pack (i32.const 0x080) (i32.const 15)))
)
