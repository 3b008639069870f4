;; Build: wat2wasm tickbrief.wat -o tickbrief.wasm   (or ../build.sh for every fixture)
;;
;; tickbrief: a hostile plugin (ABI 1.3, features metrics and tick, the
;; clock capability) whose every tick spins for 48 ms of the host's clock
;; and then answers OK, nothing pending and no write reported: just under
;; the 50 ms a round may run before it ends, with nobody calling it. A
;; round that reported no write and ran past 5 ms rests nine times what it
;; ran past it, so the plugin holds a CPU a tenth of the time, not half.
;; Ping and configure are OK; any other op is unsupported.
(module
  (import "storagehost_clock" "now" (func $now (result i64)))
  (memory (export "memory") 1)
  ;; Metadata, 27 bytes: abi 1.3, name "tickbrief", version "1.0.0",
  ;; features 0x101 (metrics, tick), capabilities ["clock"].
  (data (i32.const 0x000) "\01\03" "\09tickbrief" "\051.0.0" "\81\02" "\01" "\05clock")
  (data (i32.const 0x040) "\00")
  (data (i32.const 0x0a0) "\05" "unsupported op")
  ;; the tick answer: OK, more 0, pending 0, count 0
  (data (i32.const 0x0c0) "\00" "\00" "\00" "\00")
  (func $pack (param $ptr i32) (param $len i32) (result i64)
    (i64.or (i64.shl (i64.extend_i32_u (local.get $ptr)) (i64.const 32)) (i64.extend_i32_u (local.get $len))))
  (func (export "storage_abi_version") (result i32) (i32.const 0x00010003))
  (func (export "storage_metadata") (result i64) (call $pack (i32.const 0) (i32.const 27)))
  (func (export "storage_reserve") (param $size i32) (result i32)
    (if (i32.gt_u (local.get $size) (i32.const 0x400)) (then unreachable))
    (i32.const 0x400))
  (func (export "storage_call") (param $op i32) (param $len i32) (result i64)
    (local $until i64) (local $i i32)
    (if (i32.le_u (local.get $op) (i32.const 2)) (then (return (call $pack (i32.const 0x040) (i32.const 1)))))
    (if (i32.eq (local.get $op) (i32.const 3))
      (then
        (local.set $until (i64.add (call $now) (i64.const 48000000)))
        ;; the clock read every 100 000 turns: well within the host
        ;; calls a call may make
        (block $d (loop $l
          (br_if $d (i64.ge_s (call $now) (local.get $until)))
          (local.set $i (i32.const 0))
          (block $e (loop $m
            (br_if $e (i32.ge_u (local.get $i) (i32.const 100000)))
            (local.set $i (i32.add (local.get $i) (i32.const 1)))
            (br $m)))
          (br $l)))
        (return (call $pack (i32.const 0x0c0) (i32.const 4)))))
    (call $pack (i32.const 0x0a0) (i32.const 15)))
)
