;; Build: wat2wasm cursorwalk.wat -o cursorwalk.wasm   (or ../build.sh for every fixture)
;;
;; cursorwalk: a metrics backend whose query never ends, without ever
;; repeating a cursor or a record. Every page holds one metric, named
;; after the page's number (eight letters a-p, in order), and a next cursor
;; never given before (a 64-bit counter), so a reader that follows next
;; reads for ever, each record after the one before as a listing's order
;; asks. host/backup's tests check that a backup stops at its bounds of
;; size and time.
(module
  (memory (export "memory") 1)

  ;; Metadata, 21 bytes: abi 1.0, name "cursorwalk", version "1.0.0",
  ;; features 9 (metrics, query), no capabilities.
  (data (i32.const 0x000) "\01\00" "\0acursorwalk" "\051.0.0" "\09" "\00")
  ;; OK with an empty body.
  (data (i32.const 0x040) "\00")
  ;; Unsupported, 15 bytes.
  (data (i32.const 0x080) "\05" "unsupported op")
  ;; A page, 44 bytes: OK, one record, the Metric {agent_id "walk", name
  ;; the counter's low 32 bits as eight letters a-p (at 0x108), value 1,
  ;; timestamp 2023-11-14T22:13:20Z} (33 bytes), next: 8 bytes, the
  ;; counter (at 0x124); both set per call.
  (data (i32.const 0x100) "\00" "\01"
    "\04walk" "\08aaaaaaaa" "\00\00\00\00\00\00\f0\3f" "\80\80\d0\e2\c6\bf\ce\97\2f" "\00" "\00"
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
    (local $i i32)
    ;; OpPing (1), OpConfigure (2)
    (if (i32.or (i32.eq (local.get $op) (i32.const 1)) (i32.eq (local.get $op) (i32.const 2)))
      (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    ;; OpQueryMetrics (13)
    (if (i32.eq (local.get $op) (i32.const 13))
      (then
        (global.set $n (i64.add (global.get $n) (i64.const 1)))
        (i64.store (i32.const 0x124) (global.get $n))
        ;; name[i] = 'a' + the counter's nibble 7 - i
        (local.set $i (i32.const 0))
        (block $named
          (loop $nibbles
            (br_if $named (i32.ge_u (local.get $i) (i32.const 8)))
            (i32.store8 (i32.add (i32.const 0x108) (local.get $i))
              (i32.add (i32.const 97)
                (i32.and
                  (i32.wrap_i64 (i64.shr_u (global.get $n)
                    (i64.extend_i32_u (i32.sub (i32.const 28) (i32.mul (local.get $i) (i32.const 4))))))
                  (i32.const 15))))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $nibbles)))
        (return (call $pack (i32.const 0x100) (i32.const 44)))))
    (call $pack (i32.const 0x080) (i32.const 15)))
)
